// One rank stops (SIGSTOP, as a hung or swapped-out process would) while the others wait for
// it; the collective timeout must end the job with a message naming the wait and the peer.
// Usage: mpirun -n N node --import tsx stall.ts MODE [SECONDS], MODE one of
//   allreduce - rank 1 stops, the others all-reduce         recv - rank 1 stops, rank 0 receives from it
//   irecv     - as recv, through irecv + wait               api  - as allreduce, the timeout set by setCollectiveTimeout(SECONDS)
//   ring      - a ring step of 3 ranks (context parallel's): rank 0 waits for isend to 2 and irecv from 1 together
//   quick     - nobody stops: a collective that completes in time is not reported
import { collectiveTimeout, init, printIf, setCollectiveTimeout, waitAll } from "../../src/index.ts";

const [mode, seconds] = process.argv.slice(2) as [string, string?];
const world = init();
if (mode === "api") setCollectiveTimeout(Number(seconds));
const limit = collectiveTimeout();
printIf(world.rank === 0, `timeout ${limit}`);
// The ranks start together first, without a limit: on a loaded machine one may start seconds late.
setCollectiveTimeout(0);
world.barrier();
setCollectiveTimeout(limit);
if (world.rank === 1 && mode !== "quick") process.kill(process.pid, "SIGSTOP");
const buf = new Float32Array(4);
if (mode === "recv" && world.rank === 0) world.recv(buf, 1, 7);
else if (mode === "irecv" && world.rank === 0) world.irecv(buf, 1, 7).wait();
else if (mode === "ring" && world.rank !== 1) {
  const next = (world.rank + 1) % world.size;
  const prev = (world.rank + world.size - 1) % world.size;
  waitAll([world.isend(buf, prev, 7), world.irecv(new Float32Array(4), next, 7)]);
  // Rank 2's step completes; it then waits without a limit, so that rank 0 is the one to report.
  if (world.rank === 2) setCollectiveTimeout(0);
} else if (mode === "allreduce" || mode === "api" || mode === "quick") {
  if (mode === "quick" && world.rank === 1) await new Promise((resolve) => setTimeout(resolve, 500));
  world.allreduce(buf);
}
printIf(world.rank === 0, "done");
