// The benchmark's JS side, on 2 ranks: allreduce (in place, float32 sum) and send/recv
// ping-pong, each timed as the median over repeats of a timed loop. Run by run.ts under
// mpirun -n 2; rank 0 prints the results as one JSON line. mpi4py_bench.py is its twin.
import { readFileSync } from "node:fs";
import { init, printIf, type Comm } from "../src/index.ts";

interface Case {
  op: "allreduce" | "sendrecv";
  bytes: number;
  iterations: number;
}
const { repeats, cases } = JSON.parse(readFileSync(new URL("cases.json", import.meta.url), "utf8")) as {
  repeats: number;
  cases: Case[];
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Seconds per operation: for sendrecv, one message's one-way time (half a round trip). */
function measure(world: Comm, { op, bytes, iterations }: Case): number {
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
  loop(Math.max(1, iterations / 10)); // warm up: JIT, MPI's connections and buffers
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    world.barrier();
    const start = performance.now();
    loop(iterations);
    times.push((performance.now() - start) / 1000 / iterations / (op === "sendrecv" ? 2 : 1));
  }
  return median(times);
}

const world = init();
if (world.size !== 2) throw new Error("the benchmark runs on 2 ranks");
const results = cases.map((c) => ({ op: c.op, bytes: c.bytes, seconds: measure(world, c) }));
printIf(world.rank === 0, JSON.stringify(results));
