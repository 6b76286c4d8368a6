// Misuse of every kind, on 2 ranks: each case records the class and message of the error it
// got (or "none"). Usage: mpirun -n 2 node --import tsx errors.ts OUT_DIR
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { finalize, init, waitAll, world, type Buffer, type ReduceOp, type Request } from "../../src/index.ts";
import { writeResults, type ErrorResults } from "./fixtures.ts";

const comm = init();
const { rank } = comm;
const peer = 1 - rank;
const errors: ErrorResults = {};

function attempt(name: string, action: () => unknown): void {
  try {
    action();
    errors[name] = ["none", ""];
  } catch (error) {
    errors[name] =
      error instanceof Error ? [error.constructor.name, error.message] : ["thrown", String(error)];
  }
}

const f32 = (n: number) => new Float32Array(n);

// Wrong dtypes. The casts are the point: JS callers have no type checker to stop them.
attempt("dtype.uint8", () => comm.allreduce(new Uint8Array(4) as unknown as Buffer));
attempt("dtype.array", () => comm.allreduce([1, 2] as unknown as Buffer));
attempt("dtype.mixed", () => comm.allgather(f32(2), new Float64Array(4)));
attempt("dtype.avgInt", () => comm.allreduce(new Int32Array(2), "avg"));
attempt("op.unknown", () => comm.allreduce(f32(2), "prod" as ReduceOp));
{
  // Transferring an ArrayBuffer leaves its views empty; MPI must not see them as 0 elements.
  const moved = f32(4);
  structuredClone(moved.buffer, { transfer: [moved.buffer] });
  attempt("dtype.detached", () => comm.allreduce(moved));
  attempt("dtype.detachedIsend", () => comm.isend(moved, peer));
}

// Lengths that do not fit, and overlapping buffers.
attempt("length.allgather", () => comm.allgather(f32(2), f32(3)));
attempt("length.reduceScatter", () => comm.reduceScatter(f32(4), f32(3)));
attempt("length.allreduceInto", () => comm.allreduceInto(f32(2), f32(3)));
const shared = f32(8);
attempt("overlap.allreduceInto", () => comm.allreduceInto(shared.subarray(0, 4), shared.subarray(2, 6)));

// Ranks, roots and tags out of range.
attempt("rank.send", () => comm.send(f32(1), 2));
attempt("rank.negative", () => comm.recv(f32(1), -1));
attempt("rank.fraction", () => comm.send(f32(1), 0.5));
attempt("rank.string", () => comm.send(f32(1), "1" as unknown as number));
attempt("rank.isend", () => comm.isend(f32(1), 7));
attempt("root.broadcast", () => comm.broadcast(f32(1), 5));
attempt("rank.createGroup", () => comm.createGroup([0, 2]));
attempt("rank.duplicate", () => comm.createGroup([0, 0]));
attempt("color.negative", () => comm.split(-3));
attempt("tag.negative", () => comm.send(f32(1), peer, -1));
attempt("self.send", () => comm.send(f32(1), rank));
attempt("self.recv", () => comm.recv(f32(1), rank));

// Failures that MPI itself reports: a message longer than the receive buffer.
if (rank === 0) comm.send(f32(8), 1, 21);
else attempt("mpi.truncate", () => comm.recv(f32(4), 0, 21));
// A message shorter than the buffer.
if (rank === 0) comm.send(f32(2), 1, 22);
else attempt("recv.short", () => comm.recv(f32(4), 0, 22));

// The same through irecv: the short message is reported when the request completes.
if (rank === 0) comm.send(f32(2), 1, 25);
else attempt("irecv.short", () => comm.irecv(f32(4), 0, 25).wait());

// Requests: waiting twice, waitAll on things that are not requests.
{
  const incoming = f32(3);
  const requests: Request[] = [comm.irecv(incoming, peer, 23), comm.isend(f32(3), peer, 23)];
  requests[0]!.wait();
  attempt("wait.twice", () => requests[0]!.wait());
  attempt("waitAll.waited", () => waitAll(requests));
  requests[1]!.wait();
  attempt("test.afterWait", () => {
    if (requests[0]!.test() !== true) throw new Error("test() after completion should be true");
  });
  attempt("waitAll.notRequest", () =>
    waitAll([{ wait() {}, test: () => true, done: true }] as unknown as Request[]),
  );
  attempt("waitAll.notArray", () => waitAll("no" as unknown as Request[]));
}

// Freed communicators.
{
  const sub = comm.split(0)!;
  sub.free();
  attempt("comm.freed", () => sub.barrier());
  attempt("comm.freedTwice", () => sub.free());
  attempt("comm.freeWorld", () => comm.free());
}

// finalize() refuses while a request is pending.
{
  const incoming = f32(2);
  const pending = comm.irecv(incoming, peer, 24);
  attempt("finalize.pending", () => finalize());
  comm.send(new Float32Array([rank, rank]), peer, 24);
  pending.wait();
}

// MPI belongs to the main thread: a worker thread can neither start nor end it.
{
  // The --import tsx of this process does not make worker threads load .ts files (Node 20),
  // so the thread loads its script through tsx's API.
  const script = JSON.stringify(new URL("thread.ts", import.meta.url).href);
  const thread = new Worker(`import("tsx/esm/api").then((tsx) => tsx.tsImport(${script}, ${script}))`, {
    eval: true,
  });
  const [fromThread] = (await once(thread, "message")) as [ErrorResults];
  Object.assign(errors, fromThread);
  await thread.terminate();
}

// Anything after finalize. The `exchange` requests completed (test() said so) but were
// never waited for: waitAll on them afterwards must not call MPI.
const sub = comm.split(0)!;
const exchange = [comm.irecv(f32(1), peer, 26), comm.isend(f32(1), peer, 26)];
while (!exchange.every((request) => request.test())); // test() lets MPI progress
attempt("finalize", () => finalize());
attempt("waitAll.afterFinalize", () => waitAll(exchange));
attempt("finalize.again", () => finalize());
attempt("after.allreduce", () => comm.allreduce(f32(1)));
attempt("after.sub", () => sub.barrier());
attempt("after.isend", () => comm.isend(f32(1), peer));
attempt("after.world", () => world());
attempt("after.init", () => init());

writeResults(process.argv[2]!, rank, errors);
