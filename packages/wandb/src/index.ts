// Our wandb: where the Python tutorial calls wandb.init / wandb.log, our steps call init / run.log, and the
// run's config and one JSON line of metrics per step land in runs_dir/run_name/ (config.json,
// metrics.jsonl), read by `pnpm dashboard` and `pnpm sanity`.
import fs from "node:fs";
import path from "node:path";

export interface InitOptions {
  /** Where runs go (the --runs_dir flag). */
  dir: string;
  /** The run's folder under dir (the --run_name flag). */
  name: string;
  config: Record<string, unknown>;
  /**
   * A resumed run continues its metrics after this step: lines of later steps (logged after the checkpoint
   * it resumes from, then lost with the process) are dropped, so no step appears twice. Unset: a new run.
   */
  resumeStep?: number;
}

export class Run {
  readonly file: string;
  constructor({ dir, name, config, resumeStep }: InitOptions) {
    const runDir = path.join(dir, name);
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(path.join(runDir, "config.json"), JSON.stringify(config, null, 1));
    this.file = path.join(runDir, "metrics.jsonl");
    const kept = resumeStep === undefined ? [] : linesUpTo(this.file, resumeStep);
    // rewritten whole through a rename: a crash here leaves the old file or the new one, never half
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, kept.map((l) => l + "\n").join(""));
    fs.renameSync(tmp, this.file);
  }
  log(metrics: Record<string, number>): void {
    fs.appendFileSync(this.file, JSON.stringify(metrics) + "\n");
  }
}

/** The lines of a metrics file whose step is at most `step` (unreadable lines are dropped). */
function linesUpTo(file: string, step: number): string[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => {
      try {
        const s = (JSON.parse(line) as { step?: unknown }).step;
        return typeof s === "number" && s <= step;
      } catch {
        return false;
      }
    });
}

/** Starts a run (wandb.init). */
export function init(options: InitOptions): Run {
  return new Run(options);
}
