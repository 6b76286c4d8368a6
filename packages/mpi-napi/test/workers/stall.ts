// One rank stops (SIGSTOP, as a hung or swapped-out process would) while the others wait for
// it; the collective timeout must end the job with a message naming the wait and the peer.
// Usage: mpirun -n N node --import tsx stall.ts MODE [SECONDS], MODE one of
//   allreduce - rank 1 stops, the others all-reduce         recv - rank 1 stops, rank 0 receives from it
//   irecv     - as recv, through irecv + wait               api  - as allreduce, the timeout set by setCollectiveTimeout(SECONDS)
//   quick     - nobody stops: a collective that completes in time is not reported
import { collectiveTimeout, init, printIf, setCollectiveTimeout } from "../../src/index.ts";

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
else if (mode === "allreduce" || mode === "api" || mode === "quick") {
  if (mode === "quick" && world.rank === 1) await new Promise((resolve) => setTimeout(resolve, 500));
  world.allreduce(buf);
}
printIf(world.rank === 0, "done");
