// A train script in miniature: started as a plain `node --import tsx launch.ts OUT_DIR MODE N
// [HOSTFILE]`, it relaunches itself under mpirun with N ranks (placed by HOSTFILE when given,
// with one extra mpirun argument that sets LAUNCH_MARK in the ranks' environment). MODE:
//   sum   - every rank reports an allreduce; rank 0 prints two lines
//   lines - every rank prints many long lines at once (the launcher must keep them whole)
//   fail  - the last rank throws
//   wait  - every rank prints "ready", then waits for ever (until the launcher is killed)
//   hosts - every rank reports the job's size and whether LAUNCH_MARK reached it
//   graceful - as wait, but a rank stops cleanly on SIGUSR2 (a train loop's "save and stop")
import { init, localWorldSize, printIf } from "../../src/index.ts";
import { ensureLaunched } from "../../src/launcher.ts";
import { writeResults } from "./fixtures.ts";

const [outDir, mode, ranks, hostfile] = process.argv.slice(2) as [string, string, string, string?];
await ensureLaunched(
  hostfile === undefined
    ? { worldSize: Number(ranks) }
    : { worldSize: Number(ranks), hostfile, mpirunArgs: ["-x", "LAUNCH_MARK=passed"] },
);

const world = init();
const { rank, size } = world;
if (mode === "sum") {
  const sum = new Int32Array([rank + 1]);
  world.allreduce(sum);
  writeResults(outDir, rank, { sum: [sum[0]!], size: [size], localWorldSize: [localWorldSize()] });
  printIf(rank === 0, `sum ${sum[0]} over ${size} ranks`);
  if (rank === 0) console.log("console.log", size); // uncolored, as the launcher's stdout is a pipe
} else if (mode === "lines") {
  for (let i = 0; i < 1500; i++) printIf(true, `rank ${rank} line ${i} ${String(rank).repeat(100)}`);
} else if (mode === "fail" && rank === size - 1) {
  throw new Error(`failure on rank ${rank}`);
} else if (mode === "hosts") {
  writeResults(outDir, rank, { size: [size], marked: [process.env.LAUNCH_MARK === "passed" ? 1 : 0] });
} else if (mode === "wait" || mode === "graceful") {
  // The handler goes in before "ready": the test signals as soon as it reads both lines, and a SIGUSR2
  // arriving before any handler would end the rank (its default action).
  const stopped = mode === "graceful" ? new Promise((resolve) => process.once("SIGUSR2", resolve)) : null;
  printIf(true, "ready");
  const timer = setInterval(() => {}, 1000);
  await stopped;
  clearInterval(timer);
}
world.barrier();
