// The collective timeout (NCCL's watchdog, torch's init_process_group(timeout=...)): a rank
// that has waited longer than this in a blocking call (a collective, recv, send, wait, and
// so every pipeline receive) prints which operation and which peer ranks it waits for, and
// exits, which ends the job instead of leaving every rank waiting for ever. The watch itself
// lives in the addon (native/watchdog.h), off the hot path; this file only reads settings
// (the launcher uses it without loading MPI); runtime.ts has setCollectiveTimeout.
//
// Set it with PICOTRON_COLLECTIVE_TIMEOUT (seconds, read by init(); the launcher passes it on
// to every rank, also on other machines), with the launcher's `collective_timeout` option (what
// a train script's --collective_timeout flag maps to), or at any time with setCollectiveTimeout.
/** Seconds, as torch's default for NCCL is 10 minutes and picotron's runs are shorter. */
export const DEFAULT_COLLECTIVE_TIMEOUT = 300;

/** A number of seconds >= 0 (0: wait for ever), or a one-line error naming `what`. */
export function checkTimeout(seconds: unknown, what: string): number {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`${what} must be a number of seconds >= 0 (0: no timeout), got ${String(seconds)}`);
  }
  return seconds;
}

/** PICOTRON_COLLECTIVE_TIMEOUT, or the default when it is unset or empty. */
export function timeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.PICOTRON_COLLECTIVE_TIMEOUT;
  if (text === undefined || text.trim() === "") return DEFAULT_COLLECTIVE_TIMEOUT;
  return checkTimeout(Number(text), `PICOTRON_COLLECTIVE_TIMEOUT ('${text}')`);
}
