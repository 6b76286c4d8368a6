// One rank fails while the others wait for it in a barrier; the job must end anyway.
// Usage: mpirun -n N node --import tsx fail.ts MODE, MODE one of
//   throw  - an uncaught exception          reject - an unhandled promise rejection
//   exit   - process.exit(3) (a rank that found a bad config, say)
//   abort  - comm.abort(4) on a communicator of the failing rank alone: it still ends every rank
import { init } from "../../src/index.ts";

const world = init();
const mode = process.argv[2];
const failing = world.rank === world.size - 1;
const alone = world.split(failing ? 1 : 0)!;
if (failing) {
  if (mode === "throw") throw new Error(`boom on rank ${world.rank}`);
  if (mode === "reject") void Promise.reject(new Error(`rejected on rank ${world.rank}`));
  if (mode === "exit") process.exit(3);
  if (mode === "abort") alone.abort(4);
} else {
  world.barrier(); // would wait forever for the failed rank
}
