// pnpm bench: fwd + bwd + AdamW throughput of the Llama on one CPU thread, next to PyTorch's on the same
// work (../shared/anchors/torch_llama.py bench, when python3-torch is installed), runs alternating.
//   pnpm bench [-- --steps 4 --rounds 2 --threads 1]
//   pnpm bench -- --profile      where one step's time goes, op by op (forward and backward)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { Generator, measurePeakFlops, optim, profile, setNumThreads } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import { randint } from "./utils.ts";

// "bench": SmolLM-135M's shapes with 4 layers (the anchor script's config of the same name)
const BENCH: LlamaConfig = {
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 4,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 256,
};

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .options({
    steps: { type: "number", default: 4, describe: "timed steps per round (plus one warm-up)" },
    rounds: { type: "number", default: 2, describe: "rounds, alternating ours and PyTorch's" },
    threads: { type: "number", default: 1 },
    mbs: { type: "number", default: 4 },
    seq: { type: "number", default: 256 },
    torch: { type: "boolean", default: true, describe: "also measure PyTorch (--no-torch to skip)" },
    profile: { type: "boolean", default: false, describe: "print one step's time per op instead" },
  })
  .strict()
  .parseSync();

setNumThreads(args.threads);
const config = { ...BENCH, max_position_embeddings: args.seq };
const tokensPerStep = args.mbs * args.seq;

/** picotron's FLOPs per token: 6N + 12 L H S (N counts every parameter, embedding included). */
function flopsPerToken(n: number): number {
  return 6 * n + 12 * config.num_hidden_layers * config.hidden_size * args.seq;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const model = new Llama(config).initWeights(0);
const optimizer = new optim.AdamW(model.parameters(), { lr: 3e-4 });
const gen = new Generator(0, "bench-data");
const ids = randint(gen, config.vocab_size, [args.mbs, args.seq + 1]);
const input = ids.narrow(1, 0, args.seq).contiguous();
const target = ids.narrow(1, 1, args.seq).contiguous();
const numParams = model.numParameters();
// The embedding is a lookup, not a matmul: the FLOPs actually done count only the linear layers' weights.
const matmulParams = model
  .namedParameters()
  .filter(([name, p]) => p.ndim === 2 && name !== "embedding.weight")
  .reduce((n, [, p]) => n + p.numel, 0);

function trainStep(): void {
  optimizer.zeroGrad();
  lossFn(model.forward(input), target).backward();
  optimizer.step();
}

function ourRound(): number[] {
  const times: number[] = [];
  for (let s = 0; s <= args.steps; s++) {
    const t = performance.now();
    trainStep();
    times.push((performance.now() - t) / 1e3);
  }
  return times.slice(1); // the first step compiles kernels
}

if (args.profile) {
  for (let s = 0; s < 3; s++) trainStep(); // compiles the kernels and lets the heap reach its size
  console.log(profile(trainStep).table());
  process.exit(0);
}

const anchor = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "shared",
  "anchors",
  "torch_llama.py",
);
function torchAvailable(): boolean {
  if (!fs.existsSync(anchor)) return false;
  try {
    execFileSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
function torchRound(): { step_s: number; tokens_per_s: number; impl: string } {
  const out = execFileSync(
    "/usr/bin/python3",
    [
      anchor,
      "bench",
      "--config",
      "bench",
      "--threads",
      String(args.threads),
      "--mbs",
      String(args.mbs),
      "--seq",
      String(args.seq),
      "--steps",
      String(args.steps),
    ],
    {
      env: {
        ...process.env,
        OPENBLAS_NUM_THREADS: String(args.threads),
        OMP_NUM_THREADS: String(args.threads),
      },
      encoding: "utf8",
    },
  );
  return JSON.parse(out.trim().split("\n").pop()!);
}

const peak = measurePeakFlops() / 1e9;
const withTorch = args.torch && torchAvailable();
const ours: number[] = [];
const theirs: number[] = [];
let torchImpl = "";
for (let r = 0; r < args.rounds; r++) {
  ours.push(...ourRound());
  if (withTorch) {
    const t = torchRound();
    theirs.push(t.step_s);
    torchImpl = t.impl;
  }
}

const stepS = median(ours);
const tps = tokensPerStep / stepS;
const gflops = (tps * flopsPerToken(numParams)) / 1e9;
const result: Record<string, unknown> = {
  impl: "picotron-ts",
  config: "bench",
  params: numParams,
  threads: args.threads,
  mbs: args.mbs,
  seq: args.seq,
  step_s: +stepS.toFixed(4),
  tokens_per_s: +tps.toFixed(1),
  gflops: +gflops.toFixed(1),
  peak_gflops: +peak.toFixed(1),
  mfu: +(gflops / peak).toFixed(3),
  mfu_matmul_flops: +((tps * flopsPerToken(matmulParams)) / 1e9 / peak).toFixed(3),
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
};
if (withTorch) {
  const torchStep = median(theirs);
  Object.assign(result, {
    torch_impl: torchImpl,
    torch_step_s: +torchStep.toFixed(4),
    torch_tokens_per_s: +(tokensPerStep / torchStep).toFixed(1),
    ratio_vs_torch: +(torchStep / stepS).toFixed(3),
  });
} else {
  result.torch = args.torch
    ? "not measured: /usr/bin/python3 with torch, or ../shared/anchors/torch_llama.py, is missing"
    : "skipped (--no-torch)";
}
console.log(JSON.stringify(result));
