// Small helpers shared by the step's scripts (the tutorial's utils.py).
import fs from "node:fs";
import path from "node:path";
import type { Comm } from "@picotron/mpi-napi";
import type { LlamaConfig } from "@picotron/transformers";

/** Prints only where asked (is_print_rank: the rank that logs). */
export function print(message: string, is_print_rank = true): void {
  if (is_print_rank) console.log(message);
}

/** The mean of the dp ranks' losses (for logging: the loss of the whole global batch). */
export function averageLossAcrossDpRanks(loss: number, dpGroup: Comm): number {
  const buf = new Float64Array([loss]);
  dpGroup.allreduce(buf, "avg");
  return buf[0]!;
}

/** 1234567 -> "1.23M". */
export function to_readable_format(n: number, precision = 2): string {
  for (const [unit, size] of [
    ["T", 1e12],
    ["B", 1e9],
    ["M", 1e6],
    ["K", 1e3],
  ] as const) {
    if (Math.abs(n) >= size) return `${(n / size).toFixed(precision)}${unit}`;
  }
  return n.toFixed(precision);
}

/**
 * Model FLOPs utilization, picotron's formula: 6N + 12 L H S FLOPs per token (forward + backward),
 * against the peak FLOP/s measured on this rank's threads. Returns a percentage.
 */
export function getMfu(
  tokensPerSecondPerRank: number,
  numParams: number,
  config: LlamaConfig,
  seqLen: number,
  peakFlops: number,
): number {
  const flopsPerToken = 6 * numParams + 12 * config.num_hidden_layers * config.hidden_size * seqLen;
  return ((tokensPerSecondPerRank * flopsPerToken) / peakFlops) * 100;
}

/** One JSON object per line in runs_dir/run_name/metrics.jsonl, read by the sanity check and dashboard. */
export class MetricsLogger {
  readonly file: string;
  constructor(runsDir: string, runName: string, config: Record<string, unknown>, append: boolean) {
    const dir = path.join(runsDir, runName);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 1));
    this.file = path.join(dir, "metrics.jsonl");
    if (!append) fs.writeFileSync(this.file, "");
  }
  log(metrics: Record<string, number>): void {
    fs.appendFileSync(this.file, JSON.stringify(metrics) + "\n");
  }
}

/**
 * Ctrl-C / SIGTERM ask the loop to stop after the current step (which then saves a checkpoint); a second
 * signal exits at once. Under mpirun the launcher turns the user's Ctrl-C into SIGUSR2 for every rank.
 */
export function installStopHandler(): { readonly requested: boolean } {
  const flag = { requested: false };
  let firstAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // One Ctrl-C arrives twice: the terminal signals every process of the job, and tsx's parent process
    // relays it to this one. Only a second Ctrl-C at least a second later quits at once.
    if (flag.requested) {
      if (Date.now() - firstAt > 1000) process.exit(130);
      return;
    }
    firstAt = Date.now();
    flag.requested = true;
    console.error(`\n${sig}: finishing the current step, then saving and exiting (again to quit now)`);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGUSR2"] as const) process.on(sig, onSignal);
  return flag;
}
