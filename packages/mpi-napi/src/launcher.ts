// The launcher, picotron-ts's torchrun: a train script calls ensureLaunched() first thing,
// and when it needs several ranks but was started as a plain `node train.ts`, the script
// starts itself again under mpirun, once per rank, and waits for the job:
//
//   await ensureLaunched({ worldSize: dp * tp * pp * cp });
//   const world = init(); // every rank continues here
//
// The parent process only runs mpirun and exits with the job's exit code; it prints nothing
// of its own.
import { spawn } from "node:child_process";
import { availableParallelism, constants } from "node:os";
import { isUnderMpi, jobSize } from "./env.ts";
import { forwardedEnvArgs, networkArgs } from "./hosts.ts";
import { LineRelay } from "./output.ts";
import { checkTimeout } from "./timeout.ts";

export { isUnderMpi, localRank, localWorldSize, threadsPerRank } from "./env.ts";
export { agreeToStop, installStopHandler, type StopRequest } from "./stop.ts";

export interface LaunchOptions {
  /** Ranks in the job: the product of the parallel sizes (dp x tp x pp x cp). */
  worldSize: number;
  /** An OpenMPI hostfile naming the machines (and their slots) of a job over several. */
  hostfile?: string;
  /** More mpirun arguments, passed on as they are. */
  mpirunArgs?: readonly string[];
  /**
   * Seconds a rank may wait in a collective or receive before it reports the stall and the
   * job ends (a train script's --collective_timeout); sets PICOTRON_COLLECTIVE_TIMEOUT for
   * every rank. Unset: that variable, else 300 s. (Named as the flag: a script passes `{ ...args }`.)
   */
  collective_timeout?: number;
}

export interface MpirunCommand {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** The mpirun command that runs this same script (same node, flags and arguments) on every rank. */
export function mpirunCommand(options: LaunchOptions): MpirunCommand {
  const { worldSize, hostfile, mpirunArgs = [] } = options;
  const env = { ...process.env };
  // The ranks' stdout is a pty that mpirun reads, so Node in the ranks believes it writes to
  // a terminal and colors console.log's numbers; say so when the real output is not one.
  if (!process.stdout.isTTY && env.FORCE_COLOR === undefined) env.NO_COLOR = "1";
  if (process.getuid?.() === 0) {
    // OpenMPI refuses to run as root unless both are set (containers and CI run as root).
    env.OMPI_ALLOW_RUN_AS_ROOT = "1";
    env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1";
  }
  const args = ["-n", String(worldSize)];
  // Ranks run the tensor library's own threads; binding each rank to one core (OpenMPI's
  // default for small jobs) would squeeze those threads onto it.
  args.push("--bind-to", "none");
  // Lets the relay in output.ts put the ranks' lines back together (see there).
  args.push("--tag-output");
  if (hostfile !== undefined) args.push("--hostfile", hostfile);
  // On one machine, mpirun refuses more ranks than cores unless told otherwise.
  else if (worldSize > availableParallelism()) args.push("--oversubscribe");
  // Across machines (see hosts.ts): the network to use, and the variables remote ranks need.
  args.push(...networkArgs(env));
  if (hostfile !== undefined) args.push(...forwardedEnvArgs(env));
  args.push(...mpirunArgs);
  // process.execArgv keeps node's own flags, such as the --import that loads tsx.
  args.push(process.execPath, ...process.execArgv, ...process.argv.slice(1));

  return { command: "mpirun", args, env };
}

/**
 * Makes sure this script runs as one rank of a `worldSize`-rank MPI job. Returns at once
 * under mpirun (after checking the job has worldSize ranks) or when worldSize is 1.
 * Otherwise runs the script under mpirun and exits with the job's exit code: the returned
 * promise never settles in that case, so nothing after `await ensureLaunched(...)` runs in
 * the parent.
 */
export async function ensureLaunched(options: LaunchOptions): Promise<void> {
  const { worldSize, collective_timeout: collectiveTimeout } = options;
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
  }
  if (collectiveTimeout !== undefined) {
    // Read by init() in this process when it is a rank, and by every rank of the job mpirun
    // starts from here (the environment reaches them, see hosts.ts).
    process.env.PICOTRON_COLLECTIVE_TIMEOUT = String(checkTimeout(collectiveTimeout, "--collective_timeout"));
  }
  if (isUnderMpi()) {
    const size = jobSize();
    if (size !== undefined && size !== worldSize) {
      throw new Error(`this MPI job has ${size} ranks, but the configuration needs ${worldSize}`);
    }
    return;
  }
  if (worldSize === 1) return;
  process.exit(await runJob(mpirunCommand(options)));
}

/** Runs mpirun with the ranks' output relayed line by line; resolves to its exit code. */
function runJob({ command, args, env }: MpirunCommand): Promise<number> {
  return new Promise((resolve, reject) => {
    // Its own process group: the terminal's Ctrl-C then reaches only this launcher, which decides.
    const child = spawn(command, args, { env, stdio: ["inherit", "pipe", "pipe"], detached: true });
    const stdout = new LineRelay((text) => process.stdout.write(text));
    // mpirun announces each signal it passes on; the launcher says what the signal means instead.
    const stderr = new LineRelay((text) => {
      process.stderr.write(withoutForwarding(text));
      if (!stalled && text.includes("] collective timeout: ")) endAfterStall();
    });

    // A rank that reports a collective timeout exits, and mpirun then stops the others. But when
    // the stall is a host that cannot be reached, mpirun waits for that host's daemon to confirm
    // (TCP gives up only after many minutes), so the job would hang after all. The launcher
    // gives mpirun a few seconds, then ends it (SIGKILL: on SIGTERM it would wait again). The
    // remote daemons go with their ssh sessions, and any rank still waiting, here or there, ends
    // by its own timeout.
    let stalled = false;
    const endAfterStall = () => {
      stalled = true;
      const timer = setTimeout(() => {
        process.stderr.write(
          `mpirun had not ended ${STALL_GRACE_SECONDS} s after a rank's collective timeout (a host out of reach?): ending it\n`,
        );
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      }, STALL_GRACE_SECONDS * 1000);
      child.on("close", () => clearTimeout(timer));
    };
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));

    // The first Ctrl-C or SIGTERM becomes SIGUSR2 (node keeps SIGUSR1 for its debugger), which mpirun
    // forwards to every rank: a training loop takes it as "finish this step, save, exit"; a rank that
    // does not handle it simply ends. (mpirun itself would kill the ranks on SIGINT.) A second signal
    // ends the job at once. The launcher says so itself: SIGUSR2 is only the means.
    let stoppedBy: NodeJS.Signals | null = null;
    const forward = (signal: NodeJS.Signals) => {
      if (stoppedBy === null)
        process.stderr.write(
          `${stopName(signal)}: asking every rank to save and stop (again to end at once)\n`,
        );
      child.kill(stoppedBy === null ? "SIGUSR2" : "SIGTERM");
      stoppedBy ??= signal;
    };
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);

    child.on("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "ENOENT"
          ? new Error("mpirun was not found: apt-get install openmpi-bin libopenmpi-dev")
          : error,
      );
    });
    child.on("close", (code, signal) => {
      stdout.end();
      stderr.end();
      if (stoppedBy !== null) {
        process.stderr.write(
          code === 0
            ? `${stopName(stoppedBy)}: ranks saved and stopped\n`
            : `${stopName(stoppedBy)}: the job ended with ${code === null ? `signal ${signal}` : `exit code ${code}`}\n`,
        );
      }
      // Ended after a stall: the job failed, whatever signal ended mpirun.
      if (stalled && code === null) resolve(1);
      else resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}

// How long mpirun may take to end a job after a rank's collective timeout: it needs about a
// second when every host answers.
const STALL_GRACE_SECONDS = 5;

// latin1 maps bytes to characters one to one, so the rest of the text goes through unchanged.
function withoutForwarding(text: Buffer): Buffer {
  const kept = text.toString("latin1").replace(/^mpirun: Forwarding signal \d+ to job\n/gm, "");
  return Buffer.from(kept, "latin1");
}

function stopName(signal: NodeJS.Signals): string {
  return signal === "SIGINT" ? "interrupted (Ctrl-C)" : `stopped (${signal})`;
}
