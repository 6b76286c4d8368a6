// The training recipe beyond the tutorial's plain AdamW at a constant rate: weight decay, gradient clipping
// and a warmup + cosine schedule. Its flags are declared here once, for every step's parse_args, and the
// schedule is built from them.
import { constantLR, warmupCosineLR, type Schedule } from "./lr_scheduler.ts";

/** The recipe's flags (spread into a step's parse_args; the same spec shape as @picotron/argparse). */
export const optimizer_args = {
  lr_scheduler: {
    type: "str",
    default: "cosine",
    choices: ["constant", "cosine"],
    help: "cosine: warmup, decay",
  },
  warmup_steps: { type: "int", default: 10, min: 0, help: "linear warmup steps of the cosine schedule" },
  min_lr: { type: "float", default: 1e-4, min: 0, help: "where the cosine schedule ends" },
  weight_decay: { type: "float", default: 0.01, min: 0, help: "AdamW's decoupled weight decay" },
  max_grad_norm: { type: "float", default: 1.0, min: 0, help: "clip gradients to this norm (0: off)" },
} as const;

export interface ScheduleArgs {
  lr_scheduler: string;
  learning_rate: number;
  warmup_steps: number;
  min_lr: number;
}

/** A flag combination that cannot work: the user's mistake, printed as one line. */
class UsageError extends Error {
  override name = "UsageError";
}

/** The learning-rate schedule of a run of `total_steps` optimizer steps. */
export function lr_schedule(args: ScheduleArgs, total_steps: number): Schedule {
  if (args.lr_scheduler === "constant") return constantLR(args.learning_rate);
  if (args.min_lr > args.learning_rate)
    throw new UsageError(`--min_lr ${args.min_lr} is above --learning_rate ${args.learning_rate}`);
  return warmupCosineLR(
    args.learning_rate,
    Math.min(args.warmup_steps, total_steps),
    total_steps,
    args.min_lr,
  );
}

/** A loss this many times the first step's is a run blowing up, not one still learning. */
const EXPLODED = 100;

/**
 * Stops a diverging run before its optimizer step (and so before any save): the loss or the gradient norm
 * is not finite, or the loss is far above where it started. The message names the step and what to try.
 */
export class DivergenceGuard {
  private first: number | null = null;
  check(step: number, loss: number, grad_norm: number): void {
    this.first ??= loss;
    const why = !Number.isFinite(loss)
      ? `the loss is ${loss}`
      : !Number.isFinite(grad_norm)
        ? `the gradient norm is ${grad_norm}`
        : loss > EXPLODED * Math.abs(this.first)
          ? `the loss ${loss.toPrecision(3)} is over ${EXPLODED}x the first step's ${this.first.toPrecision(3)}`
          : null;
    if (why)
      throw new UsageError(
        `step ${step}: ${why}: the run diverged; stopped before the optimizer step, checkpoints are ` +
          `untouched (try a lower --learning_rate, a longer --warmup_steps or --max_grad_norm 1)`,
      );
  }
}
