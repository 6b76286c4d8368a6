// Runs one layout's training through its step's `train` script, the way a user would.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export interface TrainCommand {
  /** The repository root: pnpm's workspace. */
  root: string;
  packageName: string;
  flags: string[];
  /** The run's folder (runs_dir/run_name): emptied first, and the run's output goes to train.log in it. */
  runDir: string;
  timeoutSeconds: number;
}

export interface TrainOutcome {
  /** null when the run exited 0; otherwise what went wrong, in one line. */
  error: Error | null;
  seconds: number;
  logFile: string;
  /** The last lines of the log, to show with a failure. */
  logTail: string;
}

function tail(file: string, lines: number): string {
  return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

export async function runTrain(cmd: TrainCommand): Promise<TrainOutcome> {
  // A stale metrics.jsonl from an earlier run must not pass for this run's when this one dies early.
  fs.rmSync(cmd.runDir, { recursive: true, force: true });
  fs.mkdirSync(cmd.runDir, { recursive: true });
  const logFile = path.join(cmd.runDir, "train.log");
  const log = fs.openSync(logFile, "w");
  const args = ["--filter", cmd.packageName, "--fail-if-no-match", "train", "--", ...cmd.flags];
  fs.writeSync(log, `$ pnpm ${args.join(" ")}\n`);
  const start = performance.now();
  // detached: the run gets its own process group, so a timeout ends mpirun and every rank with it
  const child = spawn("pnpm", args, { cwd: cmd.root, stdio: ["ignore", log, log], detached: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  }, cmd.timeoutSeconds * 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (exitCode, signal) => resolve(signal ? null : exitCode));
  }).finally(() => {
    clearTimeout(timer);
    fs.closeSync(log);
  });
  const seconds = (performance.now() - start) / 1e3;
  let error: Error | null = null;
  if (timedOut) error = new Error(`timed out after ${cmd.timeoutSeconds} s (log: ${logFile})`);
  else if (code !== 0) {
    error = new Error(`train exited with ${code ?? "a signal"} (log: ${logFile})`);
  }
  return { error, seconds, logFile, logTail: error ? tail(logFile, 15) : "" };
}
