// pnpm --filter step10 bench: ZeRO stages 0 to 3 on dp 1, 2 and 4, each a short train.ts run of a small
// Llama (one thread per rank, the same global batch). Per run: the training state each rank keeps between
// steps (weights, gradients, AdamW moments, counted by train.ts, the largest rank's) against the ZeRO
// formulas in fp32 — 4Ψ/N_p + 4Ψ/N_g + 8Ψ/N_m, N_m = dp from stage 1, N_g from stage 2, N_p from stage 3 —
// and tokens/s (the median step after the first). The excess is the padding of the last blocks (gradients,
// and at stage 3 weights), when the largest rank's figures are another's, a few bytes.
//   pnpm --filter step10 bench [-- --steps 6 --dp 1,2,4 --stages 0,1,2,3]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .options({
    steps: { type: "number", default: 6, describe: "training steps per run (the first is not timed)" },
    dp: { type: "string", default: "1,2,4", describe: "data-parallel sizes" },
    stages: { type: "string", default: "0,1,2,3", describe: "ZeRO stages" },
  })
  .strict()
  .parseSync();

// about 3M parameters: big enough that the state dwarfs the per-rank constants, small enough for 2 cores
const MODEL = [
  "--tokenizer_name=bytes",
  "--hidden_size=256",
  "--intermediate_size=688",
  "--num_hidden_layers=4",
  "--num_attention_heads=8",
  "--num_key_value_heads=4",
  "--seq_len=128",
  "--micro_batch_size=2",
  "--omp_num_threads=1",
  "--bucket_cap_mb=1",
];
const GLOBAL_BATCH = 8; // sequences per step: dp x micro_batch_size x gradient_accumulation_steps

const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), "zero-bench-"));
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(2);
const rows: string[][] = [];
try {
  for (const stage of args.stages.split(",").map(Number)) {
    for (const dp of args.dp.split(",").map(Number)) {
      const name = `zero${stage}_dp${dp}`;
      const flags = [
        ...MODEL,
        `--dp_size=${dp}`,
        `--zero_stage=${stage}`,
        `--gradient_accumulation_steps=${GLOBAL_BATCH / (dp * 2)}`,
        `--max_tokens=${args.steps * GLOBAL_BATCH * 128}`,
        `--runs_dir=${runsDir}`,
        `--run_name=${name}`,
      ];
      const r = spawnSync(process.execPath, ["--import", "tsx", "train.ts", ...flags], {
        cwd: import.meta.dirname,
        encoding: "utf8",
      });
      if (r.status !== 0) throw new Error(`${name} failed:\n${r.stderr}`);
      const [params, grads, moments, psi] = /state per rank: .*\((\d+) (\d+) (\d+)\) of Ψ = (\d+)/
        .exec(r.stdout)!
        .slice(1)
        .map(Number);
      const shards = (from: number) => (stage >= from ? dp : 1); // the stage that shards a term divides it
      const formula = (4 * psi!) / shards(3) + (4 * psi!) / shards(2) + (8 * psi!) / shards(1);
      const metrics = fs
        .readFileSync(path.join(runsDir, name, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { tokens_per_s: number }).tokens_per_s)
        .slice(1)
        .sort((a, b) => a - b);
      const tokens_per_s = metrics[Math.floor(metrics.length / 2)]!;
      const counted = params! + grads! + moments!;
      rows.push([
        String(stage),
        String(dp),
        mb(params!),
        mb(grads!),
        mb(moments!),
        mb(counted),
        mb(formula),
        String(counted - formula),
        tokens_per_s.toFixed(0),
      ]);
      console.error(`done: ${name}`);
    }
  }
} finally {
  fs.rmSync(runsDir, { recursive: true, force: true });
}
const header = [
  "stage",
  "dp",
  "params MiB",
  "grads MiB",
  "moments MiB",
  "total MiB",
  "formula MiB",
  "excess B",
  "tokens/s",
];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
console.log(`ZeRO state per rank (fp32, the largest rank's) and throughput; ${os.cpus()[0]?.model ?? "CPU"}`);
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const r of rows) console.log(line(r));
