// Point-to-point traffic around the context-parallel ring (the tutorial's cp_communications.py): each cp
// rank sends to the next one and receives from the previous one, the last rank wrapping round to the first.
// A transfer is started, the caller computes, then waits: the communication hides behind the computation.
import { type Comm, type Request, waitAll } from "@picotron/mpi-napi";

export class RingComm {
  readonly rank: number;
  readonly world_size: number;
  /** Ranks in the cp group (not world ranks) of the next and the previous cp rank. */
  readonly send_rank: number;
  readonly recv_rank: number;
  private active: Request[] | null = null;

  /**
   * `tag` keeps two rings that run at the same time over the same group apart (the backward passes K/V
   * and their gradients at once, between the same ranks, in messages of the same size).
   */
  constructor(
    private readonly group: Comm,
    private readonly tag: number,
  ) {
    this.rank = group.rank;
    this.world_size = group.size;
    this.send_rank = (this.rank + 1) % this.world_size;
    this.recv_rank = (this.rank - 1 + this.world_size) % this.world_size;
  }

  /**
   * Starts sending `send` to the next rank and receiving the previous rank's message into `recv`. Neither
   * buffer may be touched until wait() returns.
   */
  sendRecv(send: Float32Array, recv: Float32Array): void {
    if (this.active !== null) throw new Error("RingComm: sendRecv called again before wait()");
    this.active = [
      this.group.isend(send, this.send_rank, this.tag),
      this.group.irecv(recv, this.recv_rank, this.tag),
    ];
  }

  /** Blocks until the transfer started by sendRecv has completed both ways. */
  wait(): void {
    if (this.active === null) throw new Error("RingComm: wait() called with no transfer in flight");
    waitAll(this.active);
    this.active = null;
  }
}
