// The native addon (native/*.cc, built into build/Release/mpi_napi.node) and its types.
// Nothing here is public: index.ts wraps it in the Comm and Request classes, which check
// what only JS can check and fill in the defaults.
import { createRequire } from "node:module";

/** The dtypes MPI can work on in place. */
export type Buffer = Float32Array | Float64Array | Int32Array | BigInt64Array;

export interface NativeRequest {
  wait(): void;
  test(): boolean;
  readonly done: boolean;
}

/** Reduce ops are numbers here: 0 sum, 1 max, 2 min, 3 avg (see native/buffer.h). */
export interface NativeComm {
  readonly rank: number;
  readonly size: number;
  barrier(): void;
  allreduce(buf: Buffer, op: number): void;
  allreduceInto(send: Buffer, recv: Buffer, op: number): void;
  iallreduce(buf: Buffer, op: number): NativeRequest;
  allgather(send: Buffer, recv: Buffer): void;
  reduceScatter(send: Buffer, recv: Buffer, op: number): void;
  ireduceScatter(send: Buffer, recv: Buffer, op: number): NativeRequest;
  broadcast(buf: Buffer, root: number): void;
  send(buf: Buffer, dest: number, tag: number): void;
  recv(buf: Buffer, source: number, tag: number): void;
  isend(buf: Buffer, dest: number, tag: number): NativeRequest;
  irecv(buf: Buffer, source: number, tag: number): NativeRequest;
  sendrecv(sendBuf: Buffer, dest: number, recvBuf: Buffer, source: number, tag: number): void;
  split(color: number | null, key: number): NativeComm | null;
  createGroup(ranks: readonly number[]): NativeComm | null;
  free(): void;
  abort(code: number): void;
}

interface Binding {
  init(): NativeComm;
  finalize(): void;
  /** MPI_Abort on the world; returns only when MPI is not running. */
  abort(code: number): void;
  waitAll(requests: NativeRequest[]): void;
  /** Seconds a blocking call may wait before the rank reports it and exits (0: for ever). */
  setCollectiveTimeout(seconds: number): void;
  collectiveTimeout(): number;
}

function load(): Binding {
  const require = createRequire(import.meta.url);
  try {
    return require("../build/Release/mpi_napi.node") as Binding;
  } catch (cause) {
    throw new Error(
      "@picotron/mpi-napi: the native addon could not be loaded. It is built by `pnpm install` " +
        "(or `pnpm --filter @picotron/mpi-napi build`) and needs OpenMPI: " +
        "apt-get install openmpi-bin libopenmpi-dev",
      { cause },
    );
  }
}

export const native = load();
