// Comparing a run's loss curve with the baseline's, step by step, and the table the harness prints.
import type { MetricsRow } from "./metrics.ts";

export interface Comparison {
  name: string;
  /** The step's folder name, for the table. */
  stepDir: string;
  ranks: number;
  /** Optimizer steps the run logged. */
  steps: number;
  /** |loss - baseline loss| at each step the two share. */
  diffs: number[];
  maxDiff: number;
  tolerance: number;
  /** Median tokens/s over the steps after the first (which pays for warm-up); NaN without data. */
  tokensPerSecond: number;
  pass: boolean;
  /** Why it failed (empty when it passed). */
  reason: string;
}

export interface CompareInput {
  name: string;
  stepDir: string;
  ranks: number;
  tolerance: number;
  /** The run's metrics, or the error that kept it from having any (crash, missing file). */
  metrics: MetricsRow[] | Error;
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Checks one run against the baseline's losses; `expectedSteps` is how many steps every run must log. */
export function compareWithBaseline(
  input: CompareInput,
  baseline: readonly MetricsRow[],
  expectedSteps: number,
): Comparison {
  const base = { name: input.name, stepDir: input.stepDir, ranks: input.ranks, tolerance: input.tolerance };
  if (input.metrics instanceof Error) {
    return {
      ...base,
      steps: 0,
      diffs: [],
      maxDiff: NaN,
      tokensPerSecond: NaN,
      pass: false,
      reason: input.metrics.message,
    };
  }
  const rows = input.metrics;
  const problems: string[] = [];
  if (rows.length !== expectedSteps) problems.push(`logged ${rows.length} steps, expected ${expectedSteps}`);
  const badStep = rows.findIndex((r, i) => r.step !== i + 1);
  if (badStep >= 0)
    problems.push(`line ${badStep + 1} is step ${rows[badStep]!.step}, expected ${badStep + 1}`);

  const n = Math.min(rows.length, baseline.length);
  const diffs = rows.slice(0, n).map((r, i) => Math.abs(r.loss - baseline[i]!.loss));
  // NaN must fail, and Math.max would hide it behind a larger number
  const maxDiff = diffs.some(Number.isNaN) ? NaN : diffs.length ? Math.max(...diffs) : NaN;
  if (Number.isNaN(maxDiff) && n > 0) problems.push("loss is not a number");
  else if (maxDiff > input.tolerance) {
    const worst = diffs.indexOf(maxDiff);
    problems.push(`|Δloss| ${maxDiff.toExponential(2)} at step ${worst + 1} > ${input.tolerance}`);
  }
  const speeds = rows.slice(1).flatMap((r) => (r.tokens_per_s === null ? [] : [r.tokens_per_s]));
  return {
    ...base,
    steps: rows.length,
    diffs,
    maxDiff,
    tokensPerSecond: median(speeds),
    pass: problems.length === 0,
    reason: problems.join("; "),
  };
}

export const TABLE_HEADER = [
  "layout",
  "step",
  "ranks",
  "steps",
  "max |Δloss|",
  "tolerance",
  "result",
  "tokens/s",
];

/** One row of the results table, as text (the plain-text table and the HTML page share it). */
export function tableCells(c: Comparison): string[] {
  const maxDiff = Number.isNaN(c.maxDiff) ? "-" : c.maxDiff === 0 ? "0" : c.maxDiff.toExponential(2);
  return [
    c.name,
    c.stepDir,
    String(c.ranks),
    String(c.steps),
    maxDiff,
    c.tolerance === 0 ? "0 (bitwise)" : String(c.tolerance),
    c.pass ? "pass" : "FAIL",
    Number.isNaN(c.tokensPerSecond) ? "-" : c.tokensPerSecond.toFixed(0),
  ];
}

/** A plain-text table, one row per run; failures get their reason on the line below. */
export function formatTable(comparisons: readonly Comparison[]): string {
  const rows = comparisons.map(tableCells);
  const widths = TABLE_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // numbers are right-aligned so their digits line up
  const rightAligned = new Set([2, 3, 4, 7]);
  const fmt = (cells: string[]) =>
    cells
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const lines = [fmt(TABLE_HEADER), widths.map((w) => "-".repeat(w)).join("  ")];
  comparisons.forEach((c, i) => {
    lines.push(fmt(rows[i]!));
    if (!c.pass) lines.push(`    ${c.name}: ${c.reason}`);
  });
  return lines.join("\n");
}
