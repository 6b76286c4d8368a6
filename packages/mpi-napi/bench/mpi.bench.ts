// The benchmark's JS side, on 2 ranks: one case of cases.json, allreduce (in place, float32
// sum) or send/recv ping-pong, timed as the fastest of many short timed loops. Run by run.ts
// as `mpirun -n 2 node --import tsx mpi.bench.ts CASE_INDEX`; rank 0 prints the seconds per
// operation. mpi4py_bench.py is its twin.
import { readFileSync } from "node:fs";
import { init, printIf, type Comm } from "../src/index.ts";

interface Case {
  op: "allreduce" | "sendrecv";
  bytes: number;
  iterations: number;
  samples: number;
}
// `mpi.bench.ts CASE_INDEX hosts` picks from the cross-host cases (see cases.json).
const file = JSON.parse(readFileSync(new URL("cases.json", import.meta.url), "utf8")) as {
  cases: Case[];
  hostsCases: Case[];
};
const cases = process.argv[3] === "hosts" ? file.hostsCases : file.cases;

/** Seconds per operation: for sendrecv, one message's one-way time (half a round trip). */
function measure(world: Comm, { op, bytes, iterations, samples }: Case): number {
  const buf = new Float32Array(bytes / 4);
  const loop = (n: number) => {
    if (op === "allreduce") {
      for (let i = 0; i < n; i++) world.allreduce(buf);
    } else if (world.rank === 0) {
      for (let i = 0; i < n; i++) {
        world.send(buf, 1);
        world.recv(buf, 1);
      }
    } else {
      for (let i = 0; i < n; i++) {
        world.recv(buf, 0);
        world.send(buf, 0);
      }
    }
  };
  loop(Math.max(1, Math.floor((iterations * samples) / 10))); // warm up: JIT, MPI's connections and buffers
  let fastest = Infinity;
  for (let s = 0; s < samples; s++) {
    world.barrier(); // both ranks start the sample together
    const start = performance.now();
    loop(iterations);
    fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest / 1000 / iterations / (op === "sendrecv" ? 2 : 1);
}

const world = init();
if (world.size !== 2) throw new Error("the benchmark runs on 2 ranks");
const chosen = cases[Number(process.argv[2])];
if (chosen === undefined) throw new RangeError(`usage: mpi.bench.ts CASE_INDEX (0..${cases.length - 1})`);
printIf(world.rank === 0, measure(world, chosen));
