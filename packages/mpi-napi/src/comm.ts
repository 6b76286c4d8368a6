// A communicator: a group of ranks and the collective and point-to-point operations among
// them. Every buffer is a TypedArray that MPI reads and writes in place; a subarray() view
// works, so a caller can hand over one slice of a flat gradient buffer.
import type { Buffer, NativeComm } from "./binding.ts";
import { Request } from "./request.ts";

export type { Buffer };

/** "avg" is a sum followed by a division by the communicator's size (floats only). */
export type ReduceOp = "sum" | "max" | "min" | "avg";

// The native side takes ops as numbers (see ReduceOp in native/buffer.h).
const OP_CODES = new Map<string, number>([
  ["sum", 0],
  ["max", 1],
  ["min", 2],
  ["avg", 3],
]);

function opCode(op: ReduceOp): number {
  const code = OP_CODES.get(op);
  if (code === undefined) throw new TypeError(`unknown reduce op ${String(op)}: use sum, max, min or avg`);
  return code;
}

export class Comm {
  /** This process's rank in the communicator, 0 <= rank < size. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  readonly #native: NativeComm;

  /** Made by init(), split() and createGroup(); not meant to be called directly. */
  constructor(nativeComm: NativeComm) {
    this.#native = nativeComm;
    this.rank = nativeComm.rank;
    this.size = nativeComm.size;
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    this.#native.barrier();
  }

  /** Every rank's buf becomes the reduction of all ranks' buf (in place). */
  allreduce(buf: Buffer, op: ReduceOp = "sum"): void {
    this.#native.allreduce(buf, opCode(op));
  }

  /** recv becomes the reduction of all ranks' send; send is left as it was. */
  allreduceInto(send: Buffer, recv: Buffer, op: ReduceOp = "sum"): void {
    this.#native.allreduceInto(send, recv, opCode(op));
  }

  /** allreduce in the background: buf holds the result once the request completes. */
  iallreduce(buf: Buffer, op: ReduceOp = "sum"): Request {
    return new Request(this.#native.iallreduce(buf, opCode(op)));
  }

  /** recv (size x send.length elements) becomes every rank's send, in rank order. */
  allgather(send: Buffer, recv: Buffer): void {
    this.#native.allgather(send, recv);
  }

  /** Reduces send (size x recv.length elements) over all ranks; rank r gets block r in recv. */
  reduceScatter(send: Buffer, recv: Buffer, op: ReduceOp = "sum"): void {
    this.#native.reduceScatter(send, recv, opCode(op));
  }

  /** reduceScatter in the background: recv holds the block once the request completes; leave send alone until then. */
  ireduceScatter(send: Buffer, recv: Buffer, op: ReduceOp = "sum"): Request {
    return new Request(this.#native.ireduceScatter(send, recv, opCode(op)));
  }

  /** Every rank's buf becomes root's buf. */
  broadcast(buf: Buffer, root: number): void {
    this.#native.broadcast(buf, root);
  }

  /** Sends buf to rank dest; returns once buf may be reused. */
  send(buf: Buffer, dest: number, tag = 0): void {
    this.#native.send(buf, dest, tag);
  }

  /** Receives a message from rank source into buf; it must fill buf exactly. */
  recv(buf: Buffer, source: number, tag = 0): void {
    this.#native.recv(buf, source, tag);
  }

  /** send in the background: do not touch buf until the request completes. */
  isend(buf: Buffer, dest: number, tag = 0): Request {
    return new Request(this.#native.isend(buf, dest, tag));
  }

  /** recv in the background: buf holds the message once the request completes. */
  irecv(buf: Buffer, source: number, tag = 0): Request {
    return new Request(this.#native.irecv(buf, source, tag));
  }

  /** Sends sendBuf to dest and receives recvBuf from source at the same time, without deadlock. */
  sendrecv(sendBuf: Buffer, dest: number, recvBuf: Buffer, source: number, tag = 0): void {
    this.#native.sendrecv(sendBuf, dest, recvBuf, source, tag);
  }

  /**
   * Splits the ranks into communicators: those passing the same color end up together,
   * ordered by key (then by rank). A null color joins none and gets null. Every rank calls it.
   */
  split(color: number | null, key: number = this.rank): Comm | null {
    const created = this.#native.split(color, key);
    return created === null ? null : new Comm(created);
  }

  /**
   * A communicator of the listed ranks, numbered in list order. Like torch's new_group,
   * every rank calls it with the same list; ranks that are not listed get null.
   */
  createGroup(ranks: readonly number[]): Comm | null {
    const created = this.#native.createGroup(ranks);
    return created === null ? null : new Comm(created);
  }

  /** Releases a communicator made by split or createGroup. */
  free(): void {
    this.#native.free();
  }

  /** Ends every process of the job with exit code `code` (MPI_Abort). */
  abort(code = 1): never {
    this.#native.abort(code);
    process.exit(code); // only reached when MPI is no longer running
  }
}
