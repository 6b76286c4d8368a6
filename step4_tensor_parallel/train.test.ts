// End-to-end tests of the training loop, run as a user runs it: `node train.ts` with flags, in a scratch folder
// (the launcher starts mpirun for --tp_size > 1).
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

// a tiny model on the small local text: a step takes milliseconds; 8 heads and 4 KV heads split over tp 4
const TINY = [
  "--dataset_name=stories.txt",
  "--tokenizer_name=bytes",
  "--hidden_size=64",
  "--intermediate_size=128",
  "--num_hidden_layers=2",
  "--num_attention_heads=8",
  "--num_key_value_heads=4",
  "--seq_len=32",
  "--micro_batch_size=4",
  "--gradient_accumulation_steps=2",
  "--max_tokens=3072", // 12 steps of 256 tokens
  "--lr_scheduler=constant",
  "--omp_num_threads=1",
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

/** The metrics of every step of a run (checking the steps are 1, 2, ...). */
function metrics(runName: string): { loss: number; grad_norm: number }[] {
  const file = path.join(dir, "runs", runName, "metrics.jsonl");
  return fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l, i) => {
      const m = JSON.parse(l) as { step: number; loss: number; grad_norm: number };
      expect(m.step).toBe(i + 1);
      return m;
    });
}
const losses = (runName: string) => metrics(runName).map((m) => m.loss);

// 20 steps of 256 tokens
const RUN = [...TINY, "--max_tokens=5120"];

describe("step 4 training loop", () => {
  it("tp = 2 and 4 give the single-process run's loss at every step (within 1e-3), and log the tutorial's line", async () => {
    // the same model, data, seed and global batch; gradients are clipped (max_grad_norm 1)
    const runs = [];
    for (const tp of [1, 2, 4]) {
      const r = await train([...RUN, `--tp_size=${tp}`, `--run_name=equal_tp${tp}`]);
      expect(r.status, r.stderr).toBe(0);
      // embedding and projection (vocab 320 x 64), 2 layers of q/out (64 x 64), k/v (32 x 64), up/gate/down
      // (128 x 64) and 2 norms, the final norm: the whole model's count on every layout
      const params = 2 * 320 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) + 64;
      expect(r.stdout).toContain(
        `DP(1)-PP(1)-TP(${tp})-Rank(0) | model: ${to_readable_format(params)} parameters, vocab 320`,
      );
      expect(r.stdout).toMatch(
        /Step: 20, Loss: \d+\.\d{4}, Global batch size \(with seq_len\): 256\.00, Tokens\/s: .*Tokens: 5\.12K\/5\.12K, Memory \(RSS\): .*GB, MFU: /,
      );
      runs.push(metrics(`equal_tp${tp}`));
    }
    const [base] = runs;
    expect(base).toHaveLength(20);
    expect(base!.at(-1)!.loss).toBeLessThan(base![0]!.loss - 1); // it learns: the comparison is not of noise
    for (const [k, tp] of [2, 4].entries()) {
      const run = runs[k + 1]!;
      expect(run).toHaveLength(20);
      const dLoss = Math.max(...run.map((m, i) => Math.abs(m.loss - base![i]!.loss)));
      const dNorm = Math.max(...run.map((m, i) => Math.abs(m.grad_norm / base![i]!.grad_norm - 1)));
      console.log(
        `tp=${tp}: largest |loss - baseline| over 20 steps ${dLoss.toExponential(2)}, ` +
          `gradient norm relative ${dNorm.toExponential(2)}`,
      );
      expect(dLoss).toBeLessThan(1e-3);
      expect(dNorm).toBeLessThan(1e-3);
    }
  }, 300_000); // three runs, two under mpirun: slow on a busy machine

  it("a tp = 2 run stopped by SIGTERM saves its shards, and resuming it gives exactly the uninterrupted curve", async () => {
    const saveDir = path.join(dir, "ckpt-resume");
    // 60 steps: however late this test reads the output, the signal lands well before the end; the first
    // 20 steps are compared with the 20-step run (a constant learning rate: the same curve)
    const LONG = "--max_tokens=15360";
    const flags = [...RUN, LONG, "--tp_size=2", "--run_name=resumed", `--save_dir=${saveDir}`];
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
    const saved = fs.readdirSync(path.join(saveDir, `step_${String(stoppedAt).padStart(6, "0")}`)).sort();
    expect(saved).toEqual([
      "model_tp0_pp0.safetensors",
      "model_tp1_pp0.safetensors",
      "optimizer_tp0_pp0.safetensors",
      "optimizer_tp1_pp0.safetensors",
      "state.json",
    ]);
    // second half
    const r = await train([...flags, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`resumed from .*step_0*${stoppedAt} at step ${stoppedAt}`));
    const resumed = losses("resumed");
    expect(resumed).toHaveLength(60);
    expect(resumed.slice(0, 20)).toEqual(losses("equal_tp2"));
  }, 240_000);

  it("refuses to resume another model's checkpoint, or from a truncated shard", async () => {
    const saveDir = path.join(dir, "ckpt-foreign");
    const short = [...TINY, "--max_tokens=512", `--save_dir=${saveDir}`];
    expect((await train([...short, "--tp_size=2"])).status).toBe(0);
    // (another tp size of the same model is re-sharded: scripts/reshard.test.ts)
    const other = await train([...short, "--max_tokens=1024", "--num_hidden_layers=3", "--resume"]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/was saved by a different run configuration/);
    const [step] = fs.readdirSync(saveDir).filter((d) => d.startsWith("step_"));
    const shard = path.join(saveDir, step!, "model_tp1_pp0.safetensors");
    fs.truncateSync(shard, Math.floor(fs.statSync(shard).size / 2));
    const truncated = await train([...short, "--max_tokens=1024", "--tp_size=2", "--resume"]);
    expect(truncated.status).not.toBe(0);
    expect(truncated.stderr).toContain("model_tp1_pp0.safetensors");
  });

  it("bad flags and inputs fail before any work, with a clear message", async () => {
    const cases: [string[], RegExp][] = [
      [["--dataset_name=missing.txt"], /missing\.txt/],
      [["--seq_len=0"], /--seq_len must be a positive integer/],
      [["--resume"], /--resume needs --save_dir/],
      [["--max_tokens=100000000"], /Not enough tokens/],
      [["--num_attention_heads=3"], /not divisible/],
      [["--no_such_flag=1"], /Unknown argument/],
      // tensor parallelism: each dimension it cannot split is named, before mpirun starts
      [
        [
          "--tp_size=3",
          "--num_attention_heads=6",
          "--num_key_value_heads=3",
          "--hidden_size=96",
          "--intermediate_size=192",
        ],
        /--tp_size 3: vocab_size \(padded\) 320 is not divisible by 3;/,
      ],
      [
        ["--tp_size=2", "--num_attention_heads=9", "--num_key_value_heads=3", "--hidden_size=576"],
        /--tp_size 2: num_attention_heads 9, num_key_value_heads 3 are not divisible by 2;/,
      ],
      [
        ["--tp_size=4", "--intermediate_size=102"],
        /--tp_size 4: intermediate_size \(ffn\) 102 is not divisible by 4;/,
      ],
    ];
    for (const [flags, message] of cases) {
      const r = await train([...TINY, ...flags]);
      expect(r.status, flags.join(" ")).not.toBe(0);
      expect(r.stderr + r.stdout).toMatch(message);
      expect(r.stdout).not.toMatch(/Step: 1,/);
      // refused by the launching process itself: no rank ever started
      if (flags.some((f) => f.startsWith("--tp_size"))) expect(r.stderr).not.toMatch(/\[rank \d\]/);
    }
  });
});
