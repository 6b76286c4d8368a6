// A graceful stop for training loops. Ctrl-C or SIGTERM ask the loop to stop after the current step (which
// then saves a checkpoint); a second signal exits at once. Under mpirun the launcher turns the user's
// Ctrl-C into SIGUSR2 for every rank (mpirun would kill the ranks on SIGINT), so SIGUSR2 means Ctrl-C here.

export interface StopRequest {
  readonly requested: boolean;
}

const WHY: Partial<Record<NodeJS.Signals, string>> = {
  SIGINT: "interrupted (Ctrl-C)",
  SIGUSR2: "interrupted (Ctrl-C)",
  SIGTERM: "terminated (SIGTERM)",
};

export function installStopHandler(): StopRequest {
  const flag = { requested: false };
  let firstAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // One Ctrl-C arrives twice: the terminal signals every process of the job, and the launcher relays it
    // to the ranks. Only a second Ctrl-C at least a second later quits at once.
    if (flag.requested) {
      if (Date.now() - firstAt > 1000) process.exit(130);
      return;
    }
    firstAt = Date.now();
    flag.requested = true;
    console.error(
      `\n${WHY[sig] ?? sig}: finishing the current step, then saving and exiting (again to quit now)`,
    );
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGUSR2"] as const) process.on(sig, onSignal);
  return flag;
}

/** What a Comm needs to agree on stopping. */
interface MaxAllreduce {
  allreduce(buf: Int32Array, op: "max"): void;
}

/**
 * Lets the signal handlers run (a training step is synchronous: they wait for it), then agrees across the
 * ranks: true on every rank when any rank was asked to stop, so all of them save and leave at one step.
 */
export async function agreeToStop(stop: StopRequest, world: MaxAllreduce): Promise<boolean> {
  await new Promise((resolve) => setImmediate(resolve));
  const flag = new Int32Array([stop.requested ? 1 : 0]);
  world.allreduce(flag, "max");
  return flag[0] === 1;
}
