import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensureWritableDir, UsageError } from "./index.ts";

const made: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "argparse-paths-"));
  made.push(d);
  return d;
};
const mounted: string[] = [];
afterEach(() => {
  for (const d of mounted.splice(0)) spawnSync("umount", [d]);
  for (const d of made.splice(0)) {
    fs.chmodSync(d, 0o755);
    fs.rmSync(d, { recursive: true, force: true });
  }
});

describe("ensureWritableDir", () => {
  it("creates a missing folder", () => {
    const dir = path.join(tmp(), "a", "b");
    ensureWritableDir("--save_dir", dir);
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("refuses a file, naming the flag and the path", () => {
    const file = path.join(tmp(), "README.md");
    fs.writeFileSync(file, "x");
    expect(() => ensureWritableDir("--save_dir", file)).toThrow(UsageError);
    expect(() => ensureWritableDir("--save_dir", file)).toThrow(
      `--save_dir ${file}: is a file, not a folder`,
    );
    expect(() => ensureWritableDir("--runs_dir", path.join(file, "sub"))).toThrow(
      /--runs_dir .*not writable/,
    );
  });

  it("refuses a read-only folder (a read-only mount as root, permission bits otherwise)", (ctx) => {
    const dir = tmp();
    const root = process.getuid?.() === 0;
    if (root) {
      // root writes through permission bits: a read-only tmpfs is what a read-only disk looks like
      const r = spawnSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir]);
      if (r.status !== 0) ctx.skip(`cannot mount a read-only tmpfs here: ${r.stderr}`);
      mounted.push(dir);
    } else {
      fs.chmodSync(dir, 0o555);
    }
    const why = root ? "read-only file system" : "permission denied";
    const target = path.join(dir, "ckpt");
    expect(() => ensureWritableDir("--save_dir", target)).toThrow(
      `--save_dir ${target}: not writable (${why})`,
    );
    expect(() => ensureWritableDir("--runs_dir", dir)).toThrow(`--runs_dir ${dir}: not writable (${why})`);
  });
});
