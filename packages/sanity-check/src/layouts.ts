// The layouts the sanity check runs, and the one small training config they all share.
//
// Each step's engineer adds a line to LAYOUTS. A layout is run only when its step's folder (stepN_*)
// exists, so the list can name steps that have not landed yet.
import fs from "node:fs";
import path from "node:path";

/** Parallel sizes of one run; a size left out is 1 (and its flag is not passed). */
export interface Sizes {
  tp?: number;
  dp?: number;
  pp?: number;
  cp?: number;
}

export interface Layout {
  /** Unique: the row in the table, the curve's label and the run's folder name. */
  name: string;
  /** The step that provides it: runs `pnpm --filter <package of stepN_*> train`. */
  step: number;
  sizes?: Sizes;
  /** More flags for this step's train script, such as the pipeline engine. */
  flags?: Record<string, string | number>;
  /** In the `--quick` subset that CI runs; "only": in that subset but not in the full run. */
  quick?: boolean | "only";
  /** Max |Δloss| against the baseline at any step (default DEFAULT_TOLERANCE; 0: bitwise equal). */
  tolerance?: number;
}

export const DEFAULT_TOLERANCE = 1e-3;

/** The first entry is the baseline every other run is compared with. */
export const LAYOUTS: readonly Layout[] = [
  { name: "baseline", step: 3, quick: true },
  // The same run again: training must be deterministic, or no comparison below means anything.
  { name: "baseline_rerun", step: 3, quick: true, tolerance: 0 },
  { name: "tp2", step: 4, sizes: { tp: 2 }, quick: true },
  { name: "tp4", step: 4, sizes: { tp: 4 } },
  { name: "dp2_naive", step: 5, sizes: { dp: 2 }, quick: true },
  { name: "dp4_naive", step: 5, sizes: { dp: 4 } },
  { name: "dp2_tp2_naive", step: 5, sizes: { dp: 2, tp: 2 } },
  { name: "dp2_bucket", step: 6, sizes: { dp: 2 }, quick: true },
  { name: "dp4_bucket", step: 6, sizes: { dp: 4 } },
  { name: "dp2_tp2_bucket", step: 6, sizes: { dp: 2, tp: 2 } },
  { name: "pp2_afab", step: 7, sizes: { pp: 2 }, flags: { pp_engine: "afab" }, quick: true },
  { name: "pp4_afab", step: 7, sizes: { pp: 4 }, flags: { pp_engine: "afab" } },
  { name: "dp2_tp2_pp2_afab", step: 7, sizes: { dp: 2, tp: 2, pp: 2 }, flags: { pp_engine: "afab" } },
  { name: "pp2_1f1b", step: 8, sizes: { pp: 2 }, flags: { pp_engine: "1f1b" }, quick: true },
  { name: "pp4_1f1b", step: 8, sizes: { pp: 4 }, flags: { pp_engine: "1f1b" } },
  { name: "dp2_tp2_pp2_1f1b", step: 8, sizes: { dp: 2, tp: 2, pp: 2 }, flags: { pp_engine: "1f1b" } },
  { name: "cp2", step: 9, sizes: { cp: 2 }, quick: true },
  { name: "cp4", step: 9, sizes: { cp: 4 } },
  { name: "cp2_dp2_pp2_tp2", step: 9, sizes: { cp: 2, dp: 2, pp: 2, tp: 2 } },
  // 16 ranks is too many for CI's two cores: the quick subset keeps a 3D layout of step 9 instead.
  { name: "cp2_pp2_tp2", step: 9, sizes: { cp: 2, pp: 2, tp: 2 }, quick: "only" },
  { name: "dp2_zero1", step: 10, sizes: { dp: 2 }, flags: { zero_stage: 1 }, quick: true },
  { name: "dp4_zero2", step: 10, sizes: { dp: 4 }, flags: { zero_stage: 2 } },
  { name: "dp2_zero2", step: 10, sizes: { dp: 2 }, flags: { zero_stage: 2 }, quick: "only" },
  {
    name: "dp2_tp2_pp2_zero2",
    step: 10,
    sizes: { dp: 2, tp: 2, pp: 2 },
    flags: { pp_engine: "1f1b", zero_stage: 2 },
  },
  { name: "dp2_zero3", step: 10, sizes: { dp: 2 }, flags: { zero_stage: 3 }, quick: true },
  { name: "dp4_zero3", step: 10, sizes: { dp: 4 }, flags: { zero_stage: 3 } },
  {
    name: "dp2_tp2_pp2_zero3",
    step: 10,
    sizes: { dp: 2, tp: 2, pp: 2 },
    flags: { pp_engine: "1f1b", zero_stage: 3 },
  },
];

/**
 * The model and data every run shares. Tiny, so 16 oversubscribed ranks fit on two cores: 4 layers (pp 4
 * divides them), 8 heads and 4 kv heads (tp 4 divides both, and attention stays grouped-query).
 * The global batch (micro_batch × grad_acc × dp sequences) is the same for every layout: a dp layout
 * gives each rank a smaller micro-batch. Constant LR, no warmup: the curves are comparable step by step.
 */
export const SHARED = {
  model: {
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 4,
    num_attention_heads: 8,
    num_key_value_heads: 4,
  },
  seq_len: 32,
  global_batch_sequences: 8,
  gradient_accumulation_steps: 2,
  seed: 42,
  learning_rate: 1e-3,
  dataset_name: "builtin:stories",
  tokenizer_name: "bytes",
  // One thread per rank: the same kernels for every layout, and 16 ranks do not fight over 2 cores.
  omp_num_threads: 1,
} as const;

export function worldSize(layout: Layout): number {
  const { tp = 1, dp = 1, pp = 1, cp = 1 } = layout.sizes ?? {};
  return tp * dp * pp * cp;
}

export function tolerance(layout: Layout): number {
  return layout.tolerance ?? DEFAULT_TOLERANCE;
}

/** Each dp rank gets an equal share of the global batch. */
export function microBatchSize(layout: Layout): number {
  const dp = layout.sizes?.dp ?? 1;
  const perRank = SHARED.global_batch_sequences / SHARED.gradient_accumulation_steps;
  if (!Number.isInteger(perRank / dp)) {
    throw new Error(
      `layout ${layout.name}: dp ${dp} does not divide the micro-batch of ${perRank} sequences`,
    );
  }
  return perRank / dp;
}

/** Writes the shared model's HF-style config.json into `dir` (a train script's --model_name). */
export function writeModelConfig(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    ...SHARED.model,
    // the train script replaces it with the tokenizer's (padded) vocabulary
    vocab_size: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: SHARED.seq_len,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 1) + "\n");
}

/** The train script's flags for one layout. `modelDir` and `runsDir` must be absolute. */
export function trainFlags(layout: Layout, steps: number, modelDir: string, runsDir: string): string[] {
  const tokensPerStep = SHARED.global_batch_sequences * SHARED.seq_len;
  const flags: Record<string, string | number> = {
    model_name: modelDir,
    num_hidden_layers: SHARED.model.num_hidden_layers,
    num_attention_heads: SHARED.model.num_attention_heads,
    num_key_value_heads: SHARED.model.num_key_value_heads,
    dataset_name: SHARED.dataset_name,
    tokenizer_name: SHARED.tokenizer_name,
    seed: SHARED.seed,
    learning_rate: SHARED.learning_rate,
    lr_scheduler: "constant",
    warmup_steps: 0,
    seq_len: SHARED.seq_len,
    micro_batch_size: microBatchSize(layout),
    gradient_accumulation_steps: SHARED.gradient_accumulation_steps,
    max_tokens: steps * tokensPerStep,
    omp_num_threads: SHARED.omp_num_threads,
    run_name: layout.name,
    runs_dir: runsDir,
  };
  for (const [axis, size] of Object.entries(layout.sizes ?? {})) flags[`${axis}_size`] = size;
  Object.assign(flags, layout.flags);
  return Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
}

export interface StepPackage {
  dir: string;
  packageName: string;
}

/** The folder stepN_* under `root` and its workspace package name, or null when the step is not there. */
export function findStep(root: string, step: number): StepPackage | null {
  const dirs = fs.readdirSync(root).filter((d) => d.startsWith(`step${step}_`));
  if (dirs.length === 0) return null;
  if (dirs.length > 1) throw new Error(`several folders for step ${step} in ${root}: ${dirs.join(", ")}`);
  const pkgFile = path.join(root, dirs[0]!, "package.json");
  if (!fs.existsSync(pkgFile)) return null;
  const { name } = JSON.parse(fs.readFileSync(pkgFile, "utf8")) as { name?: unknown };
  if (typeof name !== "string") throw new Error(`${pkgFile}: no "name"`);
  return { dir: path.join(root, dirs[0]!), packageName: name };
}

export interface SelectOptions {
  quick: boolean;
  /** A regular expression on layout names; the baseline always runs. */
  only?: string;
}

/** The layouts to run, baseline first: those whose step exists, narrowed by --quick and --only. */
export function selectLayouts(
  root: string,
  options: SelectOptions,
  layouts: readonly Layout[] = LAYOUTS,
): { layout: Layout; step: StepPackage }[] {
  let pattern: RegExp | null = null;
  if (options.only !== undefined) {
    try {
      pattern = new RegExp(options.only);
    } catch (err) {
      throw new Error(`--only ${options.only}: not a regular expression (${(err as Error).message})`);
    }
  }
  const [baseline, ...others] = layouts;
  if (!baseline) throw new Error("no layouts");
  const baseStep = findStep(root, baseline.step);
  if (!baseStep)
    throw new Error(`the baseline's step ${baseline.step} has no step${baseline.step}_* folder in ${root}`);
  const chosen = [{ layout: baseline, step: baseStep }];
  for (const layout of others) {
    if (options.quick ? !layout.quick : layout.quick === "only") continue;
    if (pattern && !pattern.test(layout.name)) continue;
    const step = findStep(root, layout.step);
    if (step) chosen.push({ layout, step });
  }
  return chosen;
}
