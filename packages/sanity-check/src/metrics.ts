// Reading what a train script writes: runs_dir/run_name/{config.json, metrics.jsonl}.
import fs from "node:fs";
import path from "node:path";

/** One optimizer step. JSON has no NaN: a value the trainer could not compute (grad_norm with clipping off) is null. */
export interface MetricsRow {
  step: number;
  loss: number;
  lr: number | null;
  trained_tokens: number | null;
  tokens_per_s: number | null;
  tokens_per_s_per_rank: number | null;
  mfu: number | null;
  rss_bytes: number | null;
  grad_norm: number | null;
  step_s: number | null;
}

const OPTIONAL = [
  "lr",
  "trained_tokens",
  "tokens_per_s",
  "tokens_per_s_per_rank",
  "mfu",
  "rss_bytes",
  "grad_norm",
  "step_s",
] as const;

export interface ReadOptions {
  /**
   * Skip a last line with no newline yet: a run still training may be caught in the middle of writing
   * it. The sanity check reads finished runs and wants every line.
   */
  live?: boolean;
  /**
   * Skip a malformed line (or config.json) and report it here instead of failing: the dashboard shows
   * every run although one line of one run is corrupt. Unset: the first malformed line is an error.
   */
  warn?: (message: string) => void;
}

/** Parses metrics.jsonl, naming the file and line of anything malformed. */
export function readMetrics(file: string, options: ReadOptions = {}): MetricsRow[] {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const lines = fs.readFileSync(file, "utf8").split("\n");
  // After the last "\n" comes "" for a complete file, or the partial line of a run being written.
  const last = lines.pop();
  if (last !== undefined && last.trim() !== "" && !options.live) lines.push(last);
  const rows: MetricsRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(parseRow(line, `${file}:${i + 1}`));
    } catch (err) {
      if (!options.warn) throw err;
      options.warn(`skipped ${(err as Error).message}`);
    }
  });
  return rows;
}

/** One line of metrics.jsonl; `where` (file:line) names it in errors. */
function parseRow(line: string, where: string): MetricsRow {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new Error(`${where}: expected a JSON object, got ${line.slice(0, 80)}`);
  }
  const rec = obj as Record<string, unknown>;
  if (!Number.isInteger(rec.step)) throw new Error(`${where}: "step" must be an integer`);
  if (typeof rec.loss !== "number") throw new Error(`${where}: "loss" must be a number`);
  const row = { step: rec.step as number, loss: rec.loss } as MetricsRow;
  for (const key of OPTIONAL) {
    const v = rec[key] ?? null;
    if (v !== null && typeof v !== "number") throw new Error(`${where}: "${key}" must be a number or null`);
    row[key] = v;
  }
  return row;
}

export interface Run {
  name: string;
  /** The run's flags and what the trainer added (layout, num_params, peak_flops); {} if it has none. */
  config: Record<string, unknown>;
  metrics: MetricsRow[];
}

export function readRun(dir: string, options: ReadOptions = {}): Run {
  const configFile = path.join(dir, "config.json");
  let config: Record<string, unknown> = {};
  if (fs.existsSync(configFile)) {
    try {
      config = JSON.parse(fs.readFileSync(configFile, "utf8"));
    } catch (err) {
      const message = `${configFile}: not valid JSON (${(err as Error).message})`;
      if (!options.warn) throw new Error(message);
      options.warn(`skipped ${message}`);
    }
  }
  return { name: path.basename(dir), config, metrics: readMetrics(path.join(dir, "metrics.jsonl"), options) };
}

/** How deep findRuns looks below the runs folder (runs/sanity/tp2 is 2). */
const MAX_DEPTH = 3;

/**
 * Every run under `runsDir` (a folder holding metrics.jsonl), named by its path below it, so the sanity
 * check's runs show up as sanity/baseline, sanity/tp2, ... Read in live mode: runs may still be training.
 * A malformed line is skipped and reported through `warn` (file:line and why): one bad line hides nothing.
 */
export function findRuns(runsDir: string, warn: (message: string) => void = console.warn): Run[] {
  if (!fs.existsSync(runsDir) || !fs.statSync(runsDir).isDirectory()) {
    throw new Error(`${runsDir}: no such directory (a train script writes its runs into --runs_dir)`);
  }
  const runs: Run[] = [];
  const visit = (dir: string, depth: number) => {
    if (fs.existsSync(path.join(dir, "metrics.jsonl"))) {
      // a run being trained may be caught writing a line: live mode skips that partial line
      runs.push({
        ...readRun(dir, { live: true, warn }),
        name: path.relative(runsDir, dir) || path.basename(dir),
      });
      return;
    }
    if (depth === MAX_DEPTH) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) visit(path.join(dir, entry.name), depth + 1);
    }
  };
  visit(runsDir, 0);
  return runs.sort((a, b) => a.name.localeCompare(b.name));
}
