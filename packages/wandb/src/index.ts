// Our wandb: where the Python tutorial calls wandb.init / wandb.log / wandb.finish, our steps call the same
// three (log and finish act on the run init started, and do nothing on a rank that started none), and the
// run's config and one JSON line of metrics per step land in runs_dir/run_name/ (config.json,
// metrics.jsonl), read by `pnpm dashboard` and `pnpm sanity`. With --use_wandb (use_wandb: true) they also
// go to a Weights & Biases run, through the official JS client @wandb/sdk, when a key and the service are
// there; without them training goes on with the local files only.
import fs from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";

export interface InitOptions {
  /** Where runs go (the --runs_dir flag). */
  dir: string;
  /** The run's folder under dir (the --run_name flag), and the W&B run's name. */
  name: string;
  config: Record<string, unknown>;
  /**
   * A resumed run continues its metrics after this step: lines of later steps (logged after the checkpoint
   * it resumes from, then lost with the process) are dropped, so no step appears twice. Unset: a new run.
   */
  resumeStep?: number;
  /** The --use_wandb flag: also log to a W&B run (key in WANDB_API_KEY, service at WANDB_BASE_URL). */
  use_wandb?: boolean;
  /** The W&B project, as the Python's wandb.init(project="picotron_tutorial", ...). */
  project?: string;
}

export class Run {
  readonly file: string;
  /** The W&B run that log also goes to (--use_wandb), while there is one. */
  cloud: CloudRun | undefined;
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
    this.cloud?.log(metrics);
  }
  /** Finishes the W&B run (sends what is left, marks it complete), 30 s at most; a no-op without one. */
  async finish(): Promise<void> {
    await this.cloud?.finish();
    this.cloud = undefined;
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

/** The run that init started in this process (wandb.run). */
export let run: Run | undefined;

/** Starts a run (wandb.init): the local files always, a W&B run too with use_wandb when it can. */
export async function init(options: InitOptions): Promise<Run> {
  run = new Run(options);
  if (options.use_wandb) run.cloud = await CloudRun.start(options, run.file);
  return run;
}

/** One step's metrics to the run (wandb.log); nothing without one. */
export function log(metrics: Record<string, number>): void {
  run?.log(metrics);
}

/** Ends the run (wandb.finish); nothing without one. */
export async function finish(): Promise<void> {
  await run?.finish();
  run = undefined;
}

const PROBE_TIMEOUT_MS = 5_000;
// wandb.init takes a few requests and at least a second (its sender polls every second); finish, two posts
const START_TIMEOUT_MS = 30_000;
const FINISH_TIMEOUT_MS = 30_000;

type FromWorker = { type: "started"; url: string } | { type: "finished" } | { type: "error"; reason: string };

/**
 * A W&B run: @wandb/sdk (0.5) in a thread of its own, wandb_worker.mjs. In the main thread the SDK could
 * end or hold up training: it reports a run it could not create (a 403 from upsertBucket, say) by throwing
 * in a MessagePort listener, an uncaught exception; it retries a 5xx answer for some 25 minutes and waits
 * on a silent socket for ever, both of which keep the process alive; its Ctrl-C handler calls
 * process.exit() without waiting for our checkpoint. In a worker all of that ends the worker at worst,
 * signals never reach it, and terminate() drops its sockets and timers.
 */
class CloudRun {
  private worker: Worker | undefined;
  private started = false;
  private constructor(
    worker: Worker,
    private readonly fallback: string,
  ) {
    this.worker = worker;
    worker.on("message", (m: FromWorker) => m.type === "error" && this.stop(m.reason));
    worker.on("error", (e) => this.stop(e.message));
    worker.on("exit", () => this.stop("its thread ended"));
    // The worker never keeps the process alive: a run not finished is cut off at exit. After the listeners,
    // as a worker's first 'message' listener refs it again.
    worker.unref();
  }

  /** The W&B run, or undefined after one line that says why there is none. */
  static async start(options: InitOptions, file: string): Promise<CloudRun | undefined> {
    const fallback = `the metrics go to ${file} and pnpm dashboard`;
    const without = (why: string) => {
      console.log(`--use_wandb: ${why}; ${fallback}`);
      return undefined;
    };
    const apiKey = process.env.WANDB_API_KEY ?? "";
    const baseUrl = (process.env.WANDB_BASE_URL || "https://api.wandb.ai").replace(/\/+$/, "");
    if (!apiKey) return without("WANDB_API_KEY is not set");
    // a plain request first: on an unreachable service the SDK prints a page of errors, or waits for ever
    const unreachable = await probe(baseUrl);
    if (unreachable) return without(`${baseUrl} is unreachable (${unreachable})`);

    const { project = "picotron_tutorial", name, config } = options;
    const workerData = { project, name, config, apiKey, baseUrl };
    let worker: Worker;
    try {
      worker = new Worker(new URL("./wandb_worker.mjs", import.meta.url), { workerData });
    } catch (e) {
      return without(`the W&B run could not start (${errorText(e)})`);
    }
    const cloud = new CloudRun(worker, fallback);
    const answer = await reply(worker, "started", START_TIMEOUT_MS);
    if (typeof answer === "string") {
      cloud.stop(answer);
      return undefined;
    }
    cloud.started = true;
    console.log(`--use_wandb: logging to ${answer.url}`);
    return cloud;
  }

  log(metrics: Record<string, number>): void {
    // the training step as W&B's step (the x axis), so that a resumed run's metrics line up with the first's
    const step = Number.isInteger(metrics.step) && metrics.step >= 0 ? metrics.step : undefined;
    try {
      this.worker?.postMessage({ type: "log", metrics, step });
    } catch (e) {
      this.stop(errorText(e));
    }
  }

  async finish(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    worker.postMessage({ type: "finish" });
    const answer = await reply(worker, "finished", FINISH_TIMEOUT_MS);
    if (typeof answer === "string") this.stop(`finishing: ${answer}`);
    this.worker = undefined;
    await worker.terminate();
  }

  /** Ends the W&B run after a failure, said once: training goes on with the local files. */
  private stop(reason: string): void {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    const what = this.started ? "logging to W&B stopped" : "the W&B run could not start";
    console.log(`--use_wandb: ${what} (${reason}); ${this.fallback}`);
    void worker.terminate();
  }
}

/** Why `url` did not answer within PROBE_TIMEOUT_MS, or "" when it did (any HTTP status will do). */
async function probe(url: string): Promise<string> {
  try {
    const res = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.body?.cancel();
    return "";
  } catch (e) {
    if (e instanceof Error && e.name === "TimeoutError") return `no answer in ${PROBE_TIMEOUT_MS / 1000} s`;
    // fetch's own message is "fetch failed": the cause says what (ECONNREFUSED, ENOTFOUND, ...)
    const cause = e instanceof Error ? (e.cause as { code?: string } | undefined) : undefined;
    return cause?.code ?? errorText(cause ?? e);
  }
}

/** The worker's `type` answer, or why it did not come: its error, its end, or no answer within `ms`. */
function reply<T extends FromWorker["type"]>(worker: Worker, type: T, ms: number) {
  type Answer = Extract<FromWorker, { type: T }>;
  return new Promise<Answer | string>((resolve) => {
    const onMessage = (m: FromWorker) =>
      m.type === type ? done(m as Answer) : m.type === "error" && done(m.reason);
    const onError = (e: Error) => done(e.message);
    const onExit = () => done("its thread ended");
    const timer = setTimeout(() => done(`no answer in ${ms / 1000} s`), ms);
    worker.on("message", onMessage).on("error", onError).on("exit", onExit);
    function done(answer: Answer | string) {
      clearTimeout(timer);
      worker.off("message", onMessage).off("error", onError).off("exit", onExit);
      resolve(answer);
    }
  });
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
