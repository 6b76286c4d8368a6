// MPI's life cycle for this process: init() once, finalize() at exit, and what happens when
// one rank fails.
//
// The failure rule matters most: in a job of several ranks, the others are usually blocked
// in a collective waiting for the one that failed, and would wait forever. So an uncaught
// exception, an unhandled rejection or a non-zero exit on any rank prints that rank's error
// once and calls MPI_Abort, which ends every rank of the job with a non-zero exit code.
import { inspect } from "node:util";
import { isMainThread } from "node:worker_threads";
import { native } from "./binding.ts";
import { Comm } from "./comm.ts";
import { checkTimeout, timeoutFromEnv } from "./timeout.ts";

let worldComm: Comm | null = null;
let finalized = false;

// MPI is initialized for one thread only (MPI_THREAD_FUNNELED): the main one. The addon's
// state is per process, so a worker thread could otherwise reach MPI behind its back.
function requireMainThread(): void {
  if (!isMainThread) throw new TypeError("MPI can only be used from the main thread");
}

/**
 * Starts MPI (MPI_Init_thread) and returns the world communicator: all ranks of the job.
 * Calling it again returns the same communicator. Run under mpirun (see the launcher) for
 * more than one rank; a plain `node script.ts` is a world of one.
 */
export function init(): Comm {
  if (finalized) throw new TypeError("MPI was finalized and cannot start again");
  if (worldComm === null) {
    requireMainThread();
    const timeout = timeoutFromEnv(); // a bad value fails before MPI starts
    worldComm = new Comm(native.init());
    native.setCollectiveTimeout(timeout);
    handleFailuresAndExit(worldComm.rank, worldComm.size);
  }
  return worldComm;
}

/** The world communicator of an initialized MPI. */
export function world(): Comm {
  if (finalized) throw new TypeError("MPI was finalized");
  if (worldComm === null) throw new TypeError("MPI is not initialized: call init() first");
  return worldComm;
}

/**
 * Ends MPI (MPI_Finalize); runs by itself when the process exits, so calling it is only
 * needed to end MPI early. Nothing MPI can be used afterwards.
 */
export function finalize(): void {
  requireMainThread();
  native.finalize();
  finalized = worldComm !== null;
}

function describe(error: unknown): string {
  return typeof error === "string" ? error : inspect(error);
}

function handleFailuresAndExit(rank: number, size: number): void {
  let failed = false;
  const fail = (error: unknown): void => {
    if (!failed) {
      failed = true;
      // One write of whole lines, so the message does not interleave with other ranks'.
      process.stderr.write(`[rank ${rank}] ${describe(error)}\n`);
    }
    native.abort(1); // ends the job; returns only if MPI already finished
    process.exit(1);
  };
  process.on("uncaughtException", fail);
  process.on("unhandledRejection", fail);

  process.on("exit", (code) => {
    if (failed) return;
    // A rank that exits with an error (process.exit(1) on a bad config, say) must take the
    // others down with it: they may be waiting for it in a collective.
    if (code !== 0 && size > 1) {
      native.abort(code);
      return;
    }
    try {
      finalize();
    } catch (error) {
      failed = true;
      process.stderr.write(`[rank ${rank}] ${describe(error)}\n`);
      native.abort(1);
      process.exitCode = 1;
    }
  });
}

/**
 * How long (seconds) a blocking MPI call of this rank may wait before the rank reports what it
 * waits for and ends the job; 0 waits for ever. Takes effect at once, also before init().
 */
export function setCollectiveTimeout(seconds: number): void {
  native.setCollectiveTimeout(checkTimeout(seconds, "the collective timeout"));
  process.env.PICOTRON_COLLECTIVE_TIMEOUT = String(seconds); // so that init() keeps it
}

/** The collective timeout in force, in seconds (0: none). */
export function collectiveTimeout(): number {
  return native.collectiveTimeout();
}
