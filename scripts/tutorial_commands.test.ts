// The picotron tutorial README's sanity-check commands, run as a learner would run them here: each
// `torchrun --nproc_per_node N train.py` becomes `pnpm --filter stepK train --` (K: the folder the README
// cds into) and nothing else changes, except the flags appended at the end that make the model and the run
// tiny (a later flag wins, as in argparse). TinyLlama's config is a built-in preset; without its tokenizer
// files the byte tokenizer is used, so nothing is downloaded.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

const ROOT = path.resolve(import.meta.dirname, "..");

// verbatim from the tutorial's README ("Sanity check"), with the step folder each runs in
const COMMANDS: { name: string; step: number; command: string }[] = [
  {
    name: "Baseline",
    step: 3,
    command:
      "torchrun --nproc_per_node 1 train.py --micro_batch_size 4 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name baseline_1B --use_wandb",
  },
  {
    name: "Tensor Parallel",
    step: 4,
    command:
      "torchrun --nproc_per_node 4 train.py --tp_size 4 --micro_batch_size 4 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name tp_1B --use_wandb",
  },
  {
    name: "Data Parallel",
    step: 6,
    command:
      "torchrun --nproc_per_node 4 train.py --dp_size 4 --micro_batch_size 1 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name dp_bucket_1B --use_wandb",
  },
  {
    name: "Pipeline Parallel",
    step: 8,
    command:
      "torchrun --nproc_per_node 4 train.py --pp_size 4 --pp_engine 1f1b --micro_batch_size 4 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name pp_1f1b_1B --use_wandb",
  },
  {
    name: "3D parallelism",
    step: 8,
    command:
      "torchrun --nproc_per_node 8 train.py --tp_size 2 --pp_size 2 --pp_engine 1f1b --dp_size 2 --micro_batch_size 2 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name 3D_parallelism_1B --use_wandb",
  },
];

// every command's global batch is 32 sequences: 8 steps of 32 x 32 tokens
const TINY =
  "--num_hidden_layers 4 --num_attention_heads 4 --num_key_value_heads 4 --hidden_size 64 --intermediate_size 128 --seq_len 32 --max_tokens 8192";

/** The README's command as ours: `pnpm --filter stepK train -- <the same flags>`. */
export function translate(command: string, step: number): string {
  const torchrun = /^torchrun --nproc_per_node \d+ train\.py (.*)$/.exec(command);
  if (!torchrun) throw new Error(`not a torchrun command: ${command}`);
  return `pnpm --filter step${step} train -- ${torchrun[1]}`;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tutorial-commands-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs the command in a scratch folder (metrics and the token cache go there), pnpm pointed at the repo. */
function run(command: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const [pnpm, ...args] = command.split(" ");
  const env: NodeJS.ProcessEnv = { ...plainEnv(), PICOTRON_CACHE_DIR: path.join(dir, "cache") };
  delete env.WANDB_API_KEY; // no cloud: --use_wandb says where the metrics go instead
  const child = spawn(pnpm!, ["--dir", ROOT, ...args], { cwd: dir, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

describe("the tutorial README's sanity-check commands", () => {
  it("translate by replacing torchrun ... train.py only", () => {
    expect(translate(COMMANDS[0]!.command, 3)).toBe(
      "pnpm --filter step3 train -- --micro_batch_size 4 --gradient_accumulation_steps 8 --seq_len 1024 --max_tokens 4096000 --num_proc 16 --model_name TinyLlama/TinyLlama_v1.1 --num_hidden_layers 22 --num_attention_heads 32 --num_key_value_heads 4 --run_name baseline_1B --use_wandb",
    );
  });

  for (const { name, step, command } of COMMANDS) {
    it(`${name} (step ${step}) trains: 8 steps, the loss falls, metrics in runs/<run_name>`, async () => {
      const { status, stdout, stderr } = await run(`${translate(command, step)} ${TINY}`);
      expect(status, `${stdout}\n${stderr}`).toBe(0);
      const losses = [...stdout.matchAll(/Step: (\d+), Loss: ([\d.]+)/g)].map((m) => Number(m[2]));
      expect(losses).toHaveLength(8);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
      const run_name = /--run_name (\S+)/.exec(command)![1]!;
      expect(stdout).toMatch(new RegExp(`--use_wandb: .*runs/${run_name}/metrics\\.jsonl`));
      const metrics = fs.readFileSync(path.join(dir, "runs", run_name, "metrics.jsonl"), "utf8");
      expect(metrics.trim().split("\n")).toHaveLength(8);
    }, 600_000);
  }
});
