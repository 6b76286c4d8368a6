import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkValue, parse_args, UsageError } from "./index.ts";

const flags = {
  seq_len: { type: "int", default: 32, min: 1 },
  learning_rate: { type: "float", default: 3e-4, min: 0 },
  bucket_cap_mb: { type: "float", default: 25, above: 0 },
  pp_engine: { type: "str", default: "afab", choices: ["1f1b", "afab"] },
  save_dir: { type: "path" },
  resume: { type: "bool", default: false },
} as const;

const parse = (...argv: string[]) => parse_args("test", flags, argv);

describe("parse_args", () => {
  it("gives defaults and typed values", () => {
    const a = parse();
    expect(a).toEqual({
      seq_len: 32,
      learning_rate: 3e-4,
      bucket_cap_mb: 25,
      pp_engine: "afab",
      save_dir: undefined,
      resume: false,
    });
    const b = parse("--", "--seq_len", "64", "--pp_engine", "1f1b", "--resume", "--save_dir", "ckpt");
    // a path is the user's: resolved against the folder the command was run from
    expect([b.seq_len, b.pp_engine, b.resume, b.save_dir]).toEqual([
      64,
      "1f1b",
      true,
      path.resolve(process.env.INIT_CWD ?? process.cwd(), "ckpt"),
    ]);
  });

  it("keeps the last value of a flag given twice", () => {
    expect(parse("--seq_len", "8", "--seq_len", "16").seq_len).toBe(16);
  });

  it("refuses bad values with a message naming the flag", () => {
    const cases: [string[], RegExp][] = [
      [["--seq_len"], /^--seq_len needs a value$/],
      [["--seq_len", "0"], /--seq_len must be a positive integer, got 0/],
      [["--seq_len", "1.5"], /--seq_len must be an integer, got 1.5/],
      [["--seq_len", "abc"], /--seq_len needs a number/],
      [["--learning_rate", "-1"], /--learning_rate must be >= 0, got -1/],
      [["--bucket_cap_mb", "0"], /--bucket_cap_mb must be a positive number, got 0/],
      [["--pp_engine", "gpipe"], /pp_engine/],
      [["--save_dir"], /^--save_dir needs a value$/],
      [["--no_such_flag", "1"], /no_such_flag/],
    ];
    for (const [argv, message] of cases) {
      expect(() => parse(...argv), argv.join(" ")).toThrow(UsageError);
      expect(() => parse(...argv), argv.join(" ")).toThrow(message);
    }
  });

  it("a flag that requires another is refused without it; a writable folder is checked and made", () => {
    const spec = {
      save_dir: { type: "path", writable: true },
      resume: { type: "bool", default: false, requires: "save_dir" },
    } as const;
    expect(() => parse_args("t", spec, ["--resume"])).toThrow("--resume needs --save_dir");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "argparse-w-"));
    try {
      const file = path.join(dir, "a-file");
      fs.writeFileSync(file, "");
      expect(() => parse_args("t", spec, ["--save_dir", file])).toThrow(
        `--save_dir ${file}: is a file, not a folder`,
      );
      const made = path.join(dir, "ckpt");
      expect(parse_args("t", spec, ["--save_dir", made, "--resume"])).toEqual({
        save_dir: made,
        resume: true,
      });
      expect(fs.statSync(made).isDirectory()).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("checkValue accepts what the flags allow", () => {
    expect(checkValue("seq_len", flags.seq_len, 1)).toBeNull();
    expect(checkValue("pp_engine", flags.pp_engine, "1f1b")).toBeNull();
    expect(checkValue("learning_rate", flags.learning_rate, 0)).toBeNull();
  });

  it("prints a UsageError as one line without a stack, exit code 1", () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "argparse-"));
    const script = path.join(dir, "train.ts");
    fs.writeFileSync(
      script,
      `import { parse_args } from ${JSON.stringify(path.join(here, "index.ts"))};
       parse_args("t", { seq_len: { type: "int", default: 32, min: 1 } });`,
    );
    const r = spawnSync(process.execPath, ["--import", "tsx", script, "--seq_len", "-3"], {
      encoding: "utf8",
    });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("error: --seq_len must be a positive integer, got -3");
  });
});
