// End-to-end tests of the training loop, run as a user runs it: `node train.ts` with flags, in a scratch folder
// (the launcher starts mpirun for --dp_size x --pp_size x --cp_size x --tp_size > 1).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { to_readable_format } from "./utils.ts";

const TRAIN = path.join(import.meta.dirname, "train.ts");

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "train-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(400));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// a tiny model on the small local text: a step takes milliseconds; 4 layers (pp 4 gives each stage one),
// 8 heads and 4 KV heads (tp 2 splits them); 8 micro-batches of 1 sequence of 32 positions (cp 4: 8 each)
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
  "--max_tokens=5120", // 20 steps of 256 tokens
  "--lr_scheduler=constant",
  "--omp_num_threads=1",
  // 0.02 MiB = 5242 floats: a stage's gradients fill several buckets, whose all-reduces start in turn
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

/**
 * The flags of a dp x tp x pp x cp layout with the 1F1B schedule: the global batch stays 8 sequences
 * (dp 2: 4 micro-batches each).
 */
function layout(dp: number, tp: number, pp: number, cp: number, runName: string): string[] {
  return [
    ...TINY,
    `--dp_size=${dp}`,
    `--tp_size=${tp}`,
    `--pp_size=${pp}`,
    `--cp_size=${cp}`,
    "--pp_engine=1f1b",
    `--gradient_accumulation_steps=${MICRO_BATCHES / dp}`,
    `--run_name=${runName}`,
  ];
}

describe("step 9 training loop", () => {
  it("cp = 2 and 4, and cp 2 x pp 2 x tp 2, give the single-process run's loss at every step (within 1e-3)", async () => {
    // the same model, data, seed and global batch: each cp rank trains on its 32 / cp positions of every
    // sequence; gradients are clipped (max_grad_norm 1)
    const layouts = [
      [1, 1, 1, 1],
      [1, 1, 1, 2],
      [1, 1, 1, 4],
      [1, 2, 2, 2],
    ] as const;
    const runs = [];
    for (const [dp, tp, pp, cp] of layouts) {
      const name = `equal_dp${dp}_tp${tp}_pp${pp}_cp${cp}`;
      const r = await train(layout(dp, tp, pp, cp, name));
      expect(r.status, r.stderr).toBe(0);
      // embedding and projection (vocab 320 x 64), 4 layers of q/out (64 x 64), k/v (32 x 64), up/gate/down
      // (128 x 64) and 2 norms, the final norm: the whole model's count on every layout
      const params = 2 * 320 * 64 + 4 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) + 64;
      expect(r.stdout).toContain(
        `DP(${dp})-PP(${pp})-CP(${cp})-TP(${tp})-Rank(0) | model: ${to_readable_format(params)} parameters, vocab 320`,
      );
      // the whole batch's tokens per step: the cp ranks share sequences, not the batch
      expect(r.stdout).toMatch(
        /Step: 20, Loss: \d+\.\d{4}, Global batch size \(with seq_len\): 256\.00, Tokens\/s: .*Tokens: 5\.12K\/5\.12K, Memory \(RSS\): .*GB, MFU: /,
      );
      // one log line per step: the logging rank's only
      expect(r.stdout.match(/Step: \d+, Loss/g)).toHaveLength(20);
      runs.push(metrics(name));
    }
    const [base] = runs;
    expect(base).toHaveLength(20);
    expect(base!.at(-1)!.loss).toBeLessThan(base![0]!.loss - 1); // it learns: the comparison is not of noise
    for (const [k, [dp, tp, pp, cp]] of layouts.entries()) {
      if (k === 0) continue;
      const run = runs[k]!;
      expect(run).toHaveLength(20);
      const dLoss = Math.max(...run.map((m, i) => Math.abs(m.loss - base![i]!.loss)));
      const dNorm = Math.max(...run.map((m, i) => Math.abs(m.grad_norm / base![i]!.grad_norm - 1)));
      console.log(
        `dp=${dp} tp=${tp} pp=${pp} cp=${cp}: largest |loss - baseline| over 20 steps ${dLoss.toExponential(2)}, ` +
          `gradient norm relative ${dNorm.toExponential(2)}`,
      );
      expect(dLoss).toBeLessThan(1e-3);
      expect(dNorm).toBeLessThan(1e-3);
    }
  }, 300_000); // four runs, three under mpirun (one of 8 ranks): slow on a busy machine

  it("a cp = 2 run stopped by SIGTERM saves one copy of the weights, and resuming it gives exactly the uninterrupted curve", async () => {
    const saveDir = path.join(dir, "ckpt-resume");
    // 60 steps: however late this test reads the output, the signal lands well before the end; the first
    // 20 steps are compared with the 20-step run (a constant learning rate: the same curve)
    const LONG = "--max_tokens=15360";
    const flags = [...layout(1, 1, 1, 2, "resumed"), `--save_dir=${saveDir}`, LONG];
    // first half: stop it with SIGTERM once it has logged a step; it finishes that step, saves and exits
    let signalled = false;
    const first = await train(flags, (out, child) => {
      if (!signalled && /Step: 2,/.test(out)) {
        signalled = true;
        child.kill("SIGTERM");
      }
    });
    expect(first.status, first.stderr).toBe(0);
    const stoppedAt = Number(/stopped at step (\d+)/.exec(first.stdout)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(2);
    expect(stoppedAt).toBeLessThan(60);
    // the cp ranks hold the same weights: only cp rank 0 writes them
    const saved = fs.readdirSync(path.join(saveDir, `step_${String(stoppedAt).padStart(6, "0")}`)).sort();
    expect(saved).toEqual(["model_tp0_pp0.safetensors", "optimizer_tp0_pp0.safetensors", "state.json"]);
    // another model's checkpoint is refused (another layout of this one would be re-sharded)
    const other = await train([...flags, "--num_hidden_layers=3", "--resume"]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/was saved by a different run configuration/);
    // second half: each cp rank resumes at the same chunk, with its slice of it
    const r = await train([...flags, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`resumed from .*step_0*${stoppedAt} at step ${stoppedAt}`));
    const resumed = losses("resumed");
    expect(resumed).toHaveLength(60);
    expect(resumed.slice(0, 20)).toEqual(losses("equal_dp1_tp1_pp1_cp2"));
  }, 240_000);

  it("bad flags fail before any work, with a clear message", async () => {
    const cases: [string[], RegExp][] = [
      [["--cp_size=0"], /--cp_size must be a positive integer, got 0/],
      // each cp rank takes an equal slice of every sequence
      [["--cp_size=3"], /--seq_len 32 is not divisible by --cp_size 3/],
      [["--cp_size=2", "--seq_len=31"], /--seq_len 31 is not divisible by --cp_size 2/],
    ];
    for (const [flags, message] of cases) {
      const r = await train([...TINY, ...flags]);
      expect(r.status, flags.join(" ")).not.toBe(0);
      expect(r.stderr + r.stdout).toMatch(message);
      expect(r.stdout).not.toMatch(/Step: 1,/);
      // refused by the launching process itself: no rank ever started
      expect(r.stderr).not.toMatch(/\[rank \d\]/);
    }
  });
});
