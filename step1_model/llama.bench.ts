// pnpm bench: fwd + bwd + AdamW throughput of the Llama, next to PyTorch's on the same work
// (../shared/anchors/torch_llama.py bench, when python3-torch is installed), rounds alternating.
//   pnpm bench [-- --steps 4 --rounds 2 --threads 1 --gemm auto]
//   pnpm bench -- --compare-gemm   each round runs auto, ort (MLAS) and blas (OpenBLAS) in turn (the first
//                                  one later each round), then in reverse, then PyTorch
//   pnpm bench -- --profile        where one step's time goes, op by op (forward and backward)
//   pnpm bench -- --remeasure-gemm forgets this host's stored GEMM choices (for this thread count) first
// Our rounds and profiled steps start after --warmup untimed steps.
// PyTorch runs on OpenBLAS's fastest kernels for the CPU (see torch_anchor.bench.ts); our OpenBLAS gets the
// same environment.
import os from "node:os";
import { parse_args } from "@picotron/argparse";
import {
  Generator,
  type ProfileReport,
  blasDescription,
  gemmBackendSummary,
  gemmChoices,
  measureGemmShape,
  measurePeakFlops,
  optim,
  profile,
  remeasureGemmChoices,
  setGemmBackend,
  setNumThreads,
} from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import { randint } from "./utils.ts";
import {
  OPENBLAS_OVERRIDES,
  cpuinfo,
  fairTorchEnv,
  torchAvailable,
  torchProfile,
  torchRound,
  type TorchProfile,
  type TorchEnv,
} from "./torch_anchor.bench.ts";

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

const args = parse_args("fwd + bwd + AdamW throughput, ours next to PyTorch's", {
  steps: {
    type: "int",
    default: 4,
    min: 1,
    help: "timed steps per round (plus one warm-up; PyTorch's rounds take at least 15); with --profile, profiled steps (the median is shown)",
  },
  rounds: { type: "int", default: 2, min: 1, help: "rounds, alternating ours and PyTorch's" },
  threads: { type: "int", default: 1, min: 1 },
  mbs: { type: "int", default: 4, min: 1 },
  seq: { type: "int", default: 256, min: 1 },
  gemm: {
    type: "str",
    choices: ["auto", "ort", "blas"],
    default: "auto",
    help: "GEMM backend (auto: per shape)",
  },
  "compare-gemm": { type: "bool", default: false, help: "each round: auto, ort and blas" },
  "remeasure-gemm": { type: "bool", default: false, help: "measure the GEMM choices again" },
  torch: { type: "bool", default: true, help: "also measure PyTorch (--no-torch to skip)" },
  profile: { type: "bool", default: false, help: "print one step's time per op instead" },
  warmup: {
    type: "int",
    default: 12,
    min: 0,
    help: "untimed steps before the rounds (shared by the backends compared) or the profiled steps",
  },
});

// PyTorch's environment first: when it drops OpenBLAS's overrides or sets a faster core, ours does the same,
// before our OpenBLAS loads (on the first GEMM).
// (--profile too: it profiles the kernels the rounds run.)
const fairEnv: TorchEnv | null = args.torch && torchAvailable() ? fairTorchEnv(args.threads) : null;
for (const v of fairEnv?.removed ?? []) delete process.env[v];
Object.assign(process.env, fairEnv?.set);
const torchEnv = args.profile ? null : fairEnv;

setNumThreads(args.threads);
setGemmBackend(args.gemm);
if (args["remeasure-gemm"]) remeasureGemmChoices();
const config = { ...BENCH, max_position_embeddings: args.seq };
const tokensPerStep = args.mbs * args.seq;

/** picotron's FLOPs per token: 6N + 12 L H S (N counts every parameter, embedding included). */
function flopsPerToken(n: number): number {
  return 6 * n + 12 * config.num_hidden_layers * config.hidden_size * args.seq;
}

/** "AMD EPYC (family 26, model 2, AVX-512)": the model, and from /proc/cpuinfo (Linux) family, model, AVX-512. */
function cpuDescription(): string {
  const name = os.cpus()[0]?.model ?? "unknown CPU";
  const info = cpuinfo();
  if (!info.flags) return name;
  const avx512 = info.flags.split(" ").includes("avx512f") ? "AVX-512" : "no AVX-512";
  return `${name} (family ${info["cpu family"] ?? "?"}, model ${info.model ?? "?"}, ${avx512})`;
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

/** Seconds of each of `steps` timed steps, after one untimed step (a switch of backend finds cold caches). */
function ourRound(steps: number): number[] {
  const times: number[] = [];
  for (let s = 0; s <= steps; s++) {
    const t = performance.now();
    trainStep();
    times.push((performance.now() - t) / 1e3);
  }
  return times.slice(1);
}

/**
 * Our profiled step next to PyTorch's, in four parts both profilers can name: the linear layers' matrix
 * products, the loss, the optimizer, and everything else (attention, norms, activations, autograd). The
 * last line bounds any cut outside matrix products: PyTorch's step over our products alone.
 */
function whereTheTimeGoes(ours: ProfileReport, theirs: TorchProfile): string {
  const sum = (names: string[], ms: Record<string, number>) => names.reduce((s, n) => s + (ms[n] ?? 0), 0);
  const rows = (prefix: string) =>
    ours.rows.filter((r) => r.name.startsWith(prefix)).reduce((s, r) => s + r.ms, 0);
  const mine = { linear: rows("Linear"), loss: rows("CrossEntropy"), optimizer: rows("AdamW.step") };
  const torch = {
    linear: sum(["aten::mm", "aten::addmm"], theirs.self_ms),
    loss: sum(["aten::_log_softmax", "aten::_log_softmax_backward_data"], theirs.self_ms),
    optimizer: theirs.total_ms["Optimizer.step#AdamW.step"] ?? 0,
  };
  const other = (p: typeof mine, step: number) => step - p.linear - p.loss - p.optimizer;
  const line = (label: string, a: number, b: number) =>
    `${label.padEnd(38)}${a.toFixed(0).padStart(8)}${b.toFixed(0).padStart(9)}`;
  return [
    `where the time goes (median step, ms, ${args.threads} thread(s))`.padEnd(38) + "    ours  pytorch",
    line("linear layers' matrix products", mine.linear, torch.linear),
    line("loss (softmax cross-entropy)", mine.loss, torch.loss),
    line("optimizer (AdamW)", mine.optimizer, torch.optimizer),
    line("everything else", other(mine, ours.totalMs), other(torch, theirs.step_ms)),
    line("step", ours.totalMs, theirs.step_ms),
    `bound: PyTorch's step / our matrix products alone = ${(theirs.step_ms / mine.linear).toFixed(2)}x ` +
      "(the most any cut outside matrix products can reach)",
  ].join("\n");
}

if (args.profile) {
  // compiles the kernels and lets the heap reach its size: in a VM, the first touches of fresh memory are
  // slow (the [tokens, vocab] buffers of the loss take ten steps to stop costing page faults)
  for (let s = 0; s < args.warmup; s++) trainStep();
  console.log(gemmBackendSummary());
  // the median of --steps profiled steps (a VM's speed drifts from one step to the next)
  const reports = Array.from({ length: args.steps }, () => profile(trainStep));
  const report = reports.sort((a, b) => a.totalMs - b.totalMs)[Math.floor(reports.length / 2)]!;
  console.log(`the median of ${args.steps} profiled steps:`);
  console.log(report.table());
  if (fairEnv) console.log(whereTheTimeGoes(report, torchProfile(fairEnv.env, args)));
  process.exit(0);
}

const modes = args["compare-gemm"] ? ["auto", "ort", "blas"] : [args.gemm];
// PyTorch's round is the median of at least this many steps: a fresh process's first steps touch fresh
// memory, slow in a VM, and its one warm-up step does not cover them (1 thread, AMD EPYC Zen 5, after our
// rounds: median 1.80 s/step over 5 steps, 1.46 over 15; our rounds reuse their process's warm heap).
const TORCH_MIN_STEPS = 15;
// Peak: the best of the backends on a 1024^3 product, measured before the rounds and again after them (the
// best of both), and the best of the step's own GEMM shapes measured at the end (below).
const peaks: Record<string, number> = {};
function measurePeaks(): void {
  for (const m of blasDescription() ? ["ort", "blas"] : ["ort"]) {
    setGemmBackend(m);
    peaks[m] = +(measurePeakFlops(1024, { remeasure: true }) / 1e9).toFixed(1);
  }
}
measurePeaks();
// Untimed steps first, on every backend compared in turn: a fresh process's first steps touch fresh memory
// (slow in a VM) and auto's first products measure the choices; the backend that ran first would carry it
// (2 threads, Zen 4: auto's first round 2.35, 1.89, 1.75 s/step, then 1.42-1.59 on the same kernels as
// OpenBLAS alone; its median 3.6% below OpenBLAS alone).
for (let s = 0; s < args.warmup; s++) {
  setGemmBackend(modes[s % modes.length]!);
  trainStep();
}
const ours: Record<string, number[][]> = Object.fromEntries(modes.map((m) => [m, []]));
const theirs: number[] = [];
let torchImpl = "";
// With --compare-gemm each round runs the backends in turn, then in the reverse order, --steps split between
// the two turns: a drift of the host's speed within the round then weighs on every backend alike (auto and
// OpenBLAS alone on the same kernels, one turn each, once came out 7% apart when the host slowed down).
for (let r = 0; r < args.rounds; r++) {
  // each round starts one backend later, so that none always runs first after PyTorch's process
  const turn = [...modes.slice(r % modes.length), ...modes.slice(0, r % modes.length)];
  const half = modes.length > 1 ? Math.ceil(args.steps / 2) : args.steps;
  for (const m of turn) {
    setGemmBackend(m);
    ours[m]!.push(ourRound(half));
  }
  for (const m of args.steps > half ? [...turn].reverse() : []) {
    setGemmBackend(m);
    ours[m]!.at(-1)!.push(...ourRound(args.steps - half));
  }
  if (torchEnv) {
    const t = torchRound(torchEnv.env, { ...args, steps: Math.max(args.steps, TORCH_MIN_STEPS) });
    theirs.push(t.step_s);
    torchImpl = t.impl;
  }
}
measurePeaks();
// Each GEMM shape of the step, measured again now on both libraries (GFLOP/s), and the stored choice.
const gemmShapes = Object.fromEntries(
  [...gemmChoices()].map(([key, c]) => [key, { chosen: c.backend, ...measureGemmShape(key) }]),
);
const shapesPeak = Math.max(...Object.values(gemmShapes).flatMap((g) => [g.ort_gflops, g.blas_gflops ?? 0]));
const peak = Math.max(...Object.values(peaks), shapesPeak);
setGemmBackend(modes[0]!);
const summary = gemmBackendSummary();

const round4 = (x: number) => +x.toFixed(4);
const cpu = cpuDescription();
console.log(`cpu: ${cpu}; ${args.threads} thread(s); ${summary}`);
if (torchEnv) console.log(`pytorch: OpenBLAS core ${torchEnv.core}; ${torchEnv.note}`);
const byMode: Record<string, unknown> = {};
for (const m of modes) {
  const stepS = median(ours[m]!.flat());
  const tps = tokensPerStep / stepS;
  byMode[m] = {
    step_s: round4(stepS),
    tokens_per_s: +tps.toFixed(1),
    mfu: +((tps * flopsPerToken(numParams)) / 1e9 / peak).toFixed(3),
    mfu_matmul_flops: +((tps * flopsPerToken(matmulParams)) / 1e9 / peak).toFixed(3),
    rounds_step_s: ours[m]!.map((r) => r.map(round4)),
  };
}
const primary = byMode[modes[0]!] as { step_s: number; tokens_per_s: number };
const result: Record<string, unknown> = {
  impl: "picotron-ts",
  cpu,
  config: "bench",
  params: numParams,
  threads: args.threads,
  mbs: args.mbs,
  seq: args.seq,
  gemm: summary,
  ...primary,
  peak_gflops: peak,
  peak_gflops_by_backend: peaks,
  peak_gflops_bench_shapes: shapesPeak,
  by_gemm: byMode,
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
};
if (torchEnv) {
  const torchStep = median(theirs);
  Object.assign(result, {
    torch_impl: torchImpl,
    torch_openblas_core: torchEnv.core,
    torch_openblas_cores_gflops: torchEnv.cores,
    torch_env: torchEnv.note,
    torch_step_s: round4(torchStep),
    torch_tokens_per_s: +(tokensPerStep / torchStep).toFixed(1),
    torch_rounds_step_s: theirs.map(round4),
    ratio_vs_torch: +(torchStep / primary.step_s).toFixed(3),
  });
} else {
  result.torch = args.torch
    ? "not measured: /usr/bin/python3 with torch, or ../shared/anchors/torch_llama.py, is missing"
    : "skipped (--no-torch)";
  if (OPENBLAS_OVERRIDES.some((v) => process.env[v]))
    result.note = "OpenBLAS overrides kept (no PyTorch check)";
}
result.gemm_shapes = gemmShapes;
console.log(JSON.stringify(result));
