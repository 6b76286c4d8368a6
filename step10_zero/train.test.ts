// End-to-end tests of the training loop, run as a user runs it: `node train.ts` with flags, in a scratch folder
// (the launcher starts mpirun for more than one rank).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

const TRAIN = path.join(import.meta.dirname, "train.ts");

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "train-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(400));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// a tiny model on the small local text: a step takes milliseconds; 4 layers (pp 4 gives each stage one),
// 8 heads and 4 KV heads (tp 2 splits them); 8 micro-batches of 1 sequence of 32 positions
const MICRO_BATCHES = 8;
const TINY = [
  "--dataset_name=stories.txt",
  "--tokenizer_name=bytes",
  "--hidden_size=64",
  "--intermediate_size=128",
  "--num_hidden_layers=4",
  "--num_attention_heads=8",
  "--num_key_value_heads=4",
  "--seq_len=32",
  "--micro_batch_size=1",
  "--max_tokens=2560", // 10 steps of 256 tokens
  "--lr_scheduler=constant",
  "--omp_num_threads=1",
  // 0.02 MiB = 5242 floats: the gradients fill several buckets, each cut into dp blocks (and padded)
  "--bucket_cap_mb=0.02",
];

function env(): NodeJS.ProcessEnv {
  // a clean environment: not inside the caller's MPI job; INIT_CWD (set by pnpm for `pnpm train`) makes
  // relative paths resolve against the scratch folder
  const e = plainEnv();
  return { ...e, INIT_CWD: dir, PICOTRON_CACHE_DIR: path.join(dir, "cache") };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs train.ts to its end. `onStdout` sees the output as it grows and may signal the process. Asynchronous
 * (not spawnSync): a long run must not block the test worker's event loop.
 */
function train(
  flags: string[],
  onStdout?: (out: string, child: ReturnType<typeof spawn>) => void,
): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", TRAIN, ...flags], {
    cwd: import.meta.dirname,
    env: env(),
  });
  const run: Run = { status: null, stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => {
    run.stdout += d.toString();
    onStdout?.(run.stdout, child);
  });
  child.stderr.on("data", (d: Buffer) => (run.stderr += d.toString()));
  // a hung run: the launcher takes a second SIGTERM as "end the MPI job now"
  const timer = setTimeout(() => {
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGTERM"), 1000);
  }, 240_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      run.status = code;
      resolve(run);
    }),
  );
}

interface Metrics {
  loss: number;
  grad_norm: number;
  peak_activation_bytes?: number;
}
/** The metrics of every step of a run (checking the steps are 1, 2, ...). */
function metrics(runName: string): Metrics[] {
  const file = path.join(dir, "runs", runName, "metrics.jsonl");
  return fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l, i) => {
      const m = JSON.parse(l) as Metrics & { step: number };
      expect(m.step).toBe(i + 1);
      return m;
    });
}
const losses = (runName: string) => metrics(runName).map((m) => m.loss);

/** The flags of a dp x tp x pp layout at a ZeRO stage: the global batch stays 8 sequences (dp 2: 4 micro-batches each). */
function layout(dp: number, tp: number, pp: number, stage: number, runName: string): string[] {
  return [
    ...TINY,
    `--dp_size=${dp}`,
    `--tp_size=${tp}`,
    `--pp_size=${pp}`,
    "--pp_engine=1f1b",
    `--zero_stage=${stage}`,
    `--gradient_accumulation_steps=${MICRO_BATCHES / dp}`,
    `--run_name=${runName}`,
  ];
}

// embedding and projection (vocab 320 x 64), 4 layers of q/out (64 x 64), k/v (32 x 64), up/gate/down
// (128 x 64) and 2 norms, the final norm
const PSI = 2 * 320 * 64 + 4 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) + 64;
const PARAMETER_TENSORS = 2 + 4 * 9 + 1; // an upper bound on the buckets

/** The training state per rank the run logs: [params, grads, moments] bytes (the largest rank's). */
function stateBytes(stdout: string): number[] {
  const m = /state per rank: .*\((\d+) (\d+) (\d+)\)/.exec(stdout);
  expect(m, stdout).not.toBeNull();
  return m!.slice(1).map(Number);
}

const maxDelta = (run: number[], base: number[]) => Math.max(...run.map((l, i) => Math.abs(l - base[i]!)));

describe("step 10 training loop", () => {
  it("ZeRO 1, 2 and 3 over dp 2 and 4, and ZeRO 2 on dp 2 x tp 2 x pp 2, give the baseline's loss (within 1e-5), holding the state the formulas say", async () => {
    const layouts = [
      [1, 1, 1, 0],
      [2, 1, 1, 1],
      [2, 1, 1, 2],
      [2, 1, 1, 3],
      [4, 1, 1, 1],
      [4, 1, 1, 2],
      [4, 1, 1, 3],
      [2, 2, 2, 2],
    ] as const;
    const runs: Metrics[][] = [];
    for (const [dp, tp, pp, stage] of layouts) {
      const name = `zero${stage}_dp${dp}_tp${tp}_pp${pp}`;
      // the baseline saves at step 5 (a stage-3 run resumes from it below); ZeRO-3 on dp 2 records its timeline
      const extra = stage === 0 ? [`--save_dir=${path.join(dir, "ckpt-base")}`, "--save_frequency=5"] : [];
      if (stage === 3 && dp === 2) extra.push("--trace");
      const r = await train([...layout(dp, tp, pp, stage, name), ...extra]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`ZeRO stage ${stage} over ${dp} replicas`);
      expect(r.stdout.match(/Step: \d+, Loss/g)).toHaveLength(10);
      runs.push(metrics(name));
      if (tp * pp > 1) continue; // the formulas below are for the whole model on each rank
      // fp32: 4Ψ weights, 4Ψ gradients, 8Ψ moments; stage 1 divides the moments by dp, stage 2 the gradients
      // too, stage 3 the weights too. A bucket's (or layer's) last blocks are padded (gradients and, at stage
      // 3, weights) or short (moments): the largest rank's figures.
      const [params, grads, moments] = stateBytes(r.stdout);
      console.log(
        `stage ${stage}, dp ${dp}: params ${params} B, grads ${grads} B, moments ${moments} B (Ψ = ${PSI})`,
      );
      if (stage < 3) expect(params).toBe(4 * PSI);
      else {
        expect(params).toBeGreaterThanOrEqual((4 * PSI) / dp);
        expect(params).toBeLessThan((4 * PSI) / dp + 4 * PARAMETER_TENSORS);
      }
      const gradShards = stage >= 2 ? dp : 1;
      const momentShards = stage >= 1 ? dp : 1;
      expect(grads).toBeGreaterThanOrEqual((4 * PSI) / gradShards);
      // stage 1 keeps each bucket's full N x S gradients (< N padding elements), stage 2 its S (< 1)
      expect(grads).toBeLessThan((4 * PSI) / gradShards + 4 * (stage === 1 ? dp : 1) * PARAMETER_TENSORS);
      expect(moments).toBeGreaterThanOrEqual((8 * PSI) / momentShards);
      expect(moments).toBeLessThan((8 * PSI) / momentShards + 8 * PARAMETER_TENSORS);
    }
    const base = runs[0]!.map((m) => m.loss);
    expect(base.at(-1)!).toBeLessThan(base[0]! - 1); // it learns: the comparison is not of noise
    for (const [k, [dp, tp, pp, stage]] of layouts.entries()) {
      if (k === 0) continue;
      const run = runs[k]!;
      expect(run).toHaveLength(10);
      const dLoss = maxDelta(
        run.map((m) => m.loss),
        base,
      );
      // clipping (max_grad_norm 1) sees the global norm: the blocks' squares summed over the dp ranks
      const dNorm = Math.max(...run.map((m, i) => Math.abs(m.grad_norm / runs[0]![i]!.grad_norm - 1)));
      console.log(
        `ZeRO ${stage} dp=${dp} tp=${tp} pp=${pp}: max |loss - baseline| over 10 steps ${dLoss.toExponential(2)}, ` +
          `gradient norm relative ${dNorm.toExponential(2)}`,
      );
      expect(dLoss).toBeLessThan(1e-5);
      expect(dNorm).toBeLessThan(1e-5);
    }
  }, 400_000); // eight runs, seven under mpirun (one of 8 ranks): slow on a busy machine

  it("a ZeRO-3 checkpoint holds the whole weights and moments: it resumes at stage 0 and at stage 1 on dp 4 on the uninterrupted curve", async () => {
    const saveDir = path.join(dir, "ckpt-zero");
    const half = "--max_tokens=1280"; // 5 of the 10 steps, then a checkpoint
    const first = await train([...layout(2, 1, 1, 3, "zero_first_half"), `--save_dir=${saveDir}`, half]);
    expect(first.status, first.stderr).toBe(0);
    // one file of the moments, as a stage-0 run writes: every layout can load it
    const saved = fs.readdirSync(path.join(saveDir, "step_000005")).sort();
    expect(saved).toEqual(["model_tp0_pp0.safetensors", "optimizer_tp0_pp0.safetensors", "state.json"]);
    const base = losses("zero0_dp1_tp1_pp1");
    for (const [dp, stage] of [
      [2, 0],
      [4, 1],
    ] as const) {
      const name = `zero_resumed_dp${dp}_stage${stage}`;
      const r = await train([
        ...layout(dp, 1, 1, stage, name),
        `--save_dir=${saveDir}`,
        "--save_frequency=100",
        "--resume",
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/resumed from .*step_000005 at step 5/);
      // a resumed run's metrics go on after its checkpoint: steps 6 to 10
      const lines = fs
        .readFileSync(path.join(dir, "runs", name, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n");
      const steps = lines.map((l) => JSON.parse(l) as { step: number; loss: number });
      expect(steps.map((m) => m.step)).toEqual([6, 7, 8, 9, 10]);
      const resumed = steps.map((m) => m.loss);
      const dLoss = maxDelta(resumed, base.slice(5));
      console.log(
        `ZeRO 3 dp 2 -> ZeRO ${stage} dp ${dp} at step 5: max |loss - baseline| ${dLoss.toExponential(2)}`,
      );
      expect(dLoss).toBeLessThan(1e-5);
      fs.rmSync(path.join(saveDir, "step_000010"), { recursive: true, force: true }); // the next resumes at 5
    }
  }, 240_000);

  it("a stage-0 checkpoint resumes under ZeRO 3 on dp 2 on the uninterrupted curve", async () => {
    const name = "zero3_resumed_from_stage0";
    const saveDir = path.join(dir, "ckpt-base");
    fs.rmSync(path.join(saveDir, "step_000010"), { recursive: true, force: true }); // resume at step 5
    const r = await train([
      ...layout(2, 1, 1, 3, name),
      `--save_dir=${saveDir}`,
      "--save_frequency=100",
      "--resume",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/resumed from .*step_000005 at step 5/);
    const resumed = fs
      .readFileSync(path.join(dir, "runs", name, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { loss: number }).loss);
    const dLoss = maxDelta(resumed, losses("zero0_dp1_tp1_pp1").slice(5));
    console.log(`ZeRO 0 dp 1 -> ZeRO 3 dp 2 at step 5: max |loss - baseline| ${dLoss.toExponential(2)}`);
    expect(resumed).toHaveLength(5);
    expect(dLoss).toBeLessThan(1e-5);
  }, 120_000);

  it("ZeRO 3's timeline: each layer's weights are all-gathered before its forward and before its backward, per micro-batch", () => {
    // dp 2, 4 micro-batches per step: 7 units (the embedding, 4 decoder layers, the final norm and projection)
    const trace = JSON.parse(
      fs.readFileSync(path.join(dir, "runs", "zero3_dp2_tp1_pp1", "trace.json"), "utf8"),
    ) as {
      traceEvents: { name: string; cat: string; ts: number; pid: number; args: { step: number } }[];
    };
    const units = ["embedding", 0, 1, 2, 3].map((u) => (u === "embedding" ? u : `decoder_layers.${u}`));
    units.push("final_norm", "final_proj");
    for (const rank of [0, 1]) {
      const gathers = trace.traceEvents
        .filter((e) => e.cat === "zero3" && e.pid === rank && e.args.step === 3)
        .sort((a, b) => a.ts - b.ts)
        .map((e) => e.name);
      // a micro-batch: the forward's gathers in the layers' order, then the backward's in reverse
      const microBatch = [
        ...units.map((u) => `all-gather ${u} (forward)`),
        ...[...units].reverse().map((u) => `all-gather ${u} (backward)`),
      ];
      expect(gathers).toEqual(Array.from({ length: MICRO_BATCHES / 2 }, () => microBatch).flat());
    }
  });
});
