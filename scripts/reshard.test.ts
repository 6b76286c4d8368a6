// Resuming under another layout, end to end: a tiny run of 6 steps saves at step 3 and at the end; its step 6
// checkpoint is removed, and the step 3 one is resumed under another dp/tp/pp layout (the checkpoint package
// re-shards it). The resumed steps 4..6 must give the uninterrupted run's losses within the layouts' tolerance.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

const ROOT = path.resolve(import.meta.dirname, "..");
const STEP4 = path.join(ROOT, "step4_tensor_parallel");
const STEP7 = path.join(ROOT, "step7_pipeline_afab");

// 6 steps of 4 x 32 tokens; 8 heads and 4 KV heads split over tp 4; a constant lr: the steps are comparable
const TINY = [
  "--dataset_name=stories.txt",
  "--tokenizer_name=bytes",
  "--hidden_size=64",
  "--intermediate_size=128",
  "--num_hidden_layers=2",
  "--num_attention_heads=8",
  "--num_key_value_heads=4",
  "--seq_len=32",
  "--micro_batch_size=2",
  "--max_tokens=768",
  "--save_frequency=3",
  "--lr_scheduler=constant",
  "--omp_num_threads=1",
];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "reshard-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(400));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs a step's train.ts in the scratch folder (relative flags resolve there); rejects on failure. */
function train(stepDir: string, flags: string[]): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "train.ts", ...flags], {
    cwd: stepDir,
    env: { ...plainEnv(), INIT_CWD: dir, PICOTRON_CACHE_DIR: path.join(dir, "cache") },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`train exited ${code}:\n${out}`)),
    ),
  );
}

/** step -> loss of a run's metrics. */
function losses(runName: string): Map<number, number> {
  const file = path.join(dir, "runs", runName, "metrics.jsonl");
  const lines = fs.readFileSync(file, "utf8").trim().split("\n");
  return new Map(
    lines.map((l) => JSON.parse(l) as { step: number; loss: number }).map((m) => [m.step, m.loss]),
  );
}

/**
 * The uninterrupted run under `from` (saving at steps 3 and 6), then steps 4..6 again from its step 3
 * checkpoint under `to`; returns the largest |Δloss| over the resumed steps.
 */
async function resumeElsewhere(name: string, stepDir: string, from: string[], to: string[], line: string) {
  const saveDir = path.join(dir, `ckpt-${name}`);
  const common = [...TINY, `--runs_dir=${path.join(dir, "runs")}`, `--save_dir=${saveDir}`];
  await train(stepDir, [...common, ...from, `--run_name=${name}-full`]);
  fs.rmSync(path.join(saveDir, "step_000006"), { recursive: true }); // the newest is now step 3's
  const out = await train(stepDir, [...common, ...to, `--run_name=${name}-resumed`, "--resume"]);
  expect(out).toContain(line);
  expect(out).toMatch(/resumed from .*step_000003 at step 3/);
  const full = losses(`${name}-full`);
  const resumed = losses(`${name}-resumed`);
  expect([...resumed.keys()]).toEqual([4, 5, 6]);
  expect(full.get(6)!).toBeLessThan(full.get(1)! - 0.1); // it learns: the comparison is not of noise
  const dLoss = Math.max(...[4, 5, 6].map((s) => Math.abs(resumed.get(s)! - full.get(s)!)));
  console.log(`${name}: largest |loss - uninterrupted| over steps 4..6 ${dLoss.toExponential(2)}`);
  expect(dLoss).toBeLessThanOrEqual(1e-3);
}

describe("resuming under another layout", () => {
  it("tp 1 -> tp 2 (step 4)", async () => {
    const ga = "--gradient_accumulation_steps=2";
    const line = "resumed from a dp 1 x pp 1 x tp 1 checkpoint: re-sharded for dp 1 x pp 1 x tp 2";
    await resumeElsewhere("tp1-tp2", STEP4, ["--tp_size=1", ga], ["--tp_size=2", ga], line);
  }, 120_000);

  it("pp 2 -> pp 1 (step 7)", async () => {
    const ga = "--gradient_accumulation_steps=2";
    const line = "resumed from a dp 1 x pp 2 x tp 1 checkpoint: re-sharded for dp 1 x pp 1 x tp 1";
    await resumeElsewhere("pp2-pp1", STEP7, ["--pp_size=2", ga], ["--pp_size=1", ga], line);
  }, 120_000);

  it("dp 2 x tp 2 -> tp 4, the same global batch (step 7)", async () => {
    // micro_batch_size x gradient_accumulation_steps x dp: 2 x 1 x 2 = 2 x 2 x 1
    const from = ["--dp_size=2", "--tp_size=2", "--gradient_accumulation_steps=1"];
    const to = ["--tp_size=4", "--gradient_accumulation_steps=2"];
    const line = "resumed from a dp 2 x pp 1 x tp 2 checkpoint: re-sharded for dp 1 x pp 1 x tp 4";
    await resumeElsewhere("dp2tp2-tp4", STEP7, from, to, line);
  }, 120_000);
});
