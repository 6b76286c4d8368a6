// End to end, as a user runs it: train step 4 at tp 2 with --save_dir, then the generate CLI in step 4's
// folder reads the sharded checkpoint (joined into whole tensors) and prints the prompt and its continuation,
// the same with and without the KV cache.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

const ROOT = path.join(import.meta.dirname, "..", "..", "..");
const STEP4 = path.join(ROOT, "step4_tensor_parallel");
const CLI = path.join(import.meta.dirname, "cli.ts");

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "generate-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(400));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** node --import tsx <script> in `cwd` (pnpm runs a step's scripts in its folder), with a clean environment. */
function run(script: string, cwd: string, flags: string[]): Promise<Run> {
  const env = { ...plainEnv(), INIT_CWD: dir, PICOTRON_CACHE_DIR: path.join(dir, "cache") };
  const child = spawn(process.execPath, ["--import", "tsx", script, ...flags], { cwd, env });
  const out: Run = { status: null, stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGTERM"), 240_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      out.status = code;
      resolve(out);
    }),
  );
}

describe("generate CLI", () => {
  it("prints the prompt and 20 new tokens from a tp = 2 checkpoint, equal with and without the KV cache", async () => {
    const saveDir = path.join(dir, "ckpt");
    const trained = await run(path.join(STEP4, "train.ts"), STEP4, [
      "--dataset_name=stories.txt",
      "--tokenizer_name=bytes",
      "--hidden_size=64",
      "--intermediate_size=128",
      "--num_hidden_layers=2",
      "--num_attention_heads=8",
      "--num_key_value_heads=4",
      "--seq_len=32",
      "--micro_batch_size=4",
      "--max_tokens=2048",
      "--learning_rate=3e-3",
      "--omp_num_threads=1",
      "--tp_size=2",
      `--save_dir=${saveDir}`,
    ]);
    expect(trained.status, trained.stderr).toBe(0);
    const flags = ["--checkpoint", saveDir, "--prompt", "Once", "--max_new_tokens", "20"];
    const cached = await run(CLI, STEP4, flags);
    expect(cached.status, cached.stderr).toBe(0);
    expect(cached.stdout.startsWith("Once")).toBe(true);
    expect(cached.stderr).toMatch(/^20 new tokens in .* KV cache\)/m);
    const uncached = await run(CLI, STEP4, [...flags, "--no_kv_cache"]);
    expect(uncached.status, uncached.stderr).toBe(0);
    expect(uncached.stderr).toMatch(/no KV cache/);
    expect(uncached.stdout).toBe(cached.stdout);
  }, 240_000);

  it("needs --checkpoint, and a tokenizer when the checkpoint names none: one line each", async () => {
    const missing = await run(CLI, path.join(ROOT, "step1_model"), ["--prompt", "Once"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^error: --checkpoint is required/);
    const empty = await run(CLI, STEP4, ["--checkpoint", dir]);
    expect(empty.status).toBe(1);
    expect(empty.stderr.trim()).toMatch(/^error: .*no checkpoint there/);
  });
});
