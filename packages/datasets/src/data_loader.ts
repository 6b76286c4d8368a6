// Our torch.utils.data: the DataLoader that the tutorial's MicroBatchDataLoader extends, and the
// DistributedSampler that step 5 gives it. The dataset is the token stream cut into chunks of seq_len + 1
// tokens that overlap by one (chunk k = tokens [k*seq_len, k*seq_len + seq_len + 1)).
//
// num_workers as torch's: 0 gathers each batch's chunks on the training thread when asked; N > 0 starts N
// worker threads that gather the next 2N batches ahead (torch's prefetch_factor 2) into shared memory while
// the training thread computes. Either way the batches are the same.
import { Worker } from "node:worker_threads";
import { numChunks } from "./group_texts.ts";

/** torch's DistributedSampler, shuffle=False: replica `rank` takes samples rank, rank + num_replicas, ... */
export class DistributedSampler {
  constructor(
    readonly num_replicas: number,
    readonly rank: number,
  ) {}
  /** The dataset index of this replica's i-th sample (counted from where the loader is). */
  index(i: number): number {
    return i * this.num_replicas + this.rank;
  }
}

export interface DataLoaderOptions {
  seq_len: number;
  batch_size: number;
  num_workers: number;
  sampler?: DistributedSampler;
}

/** A batch waited for this long was lost with its worker thread: fail instead of hanging the job. */
const WORKER_STALL_MS = 120_000;
const CONSUMED = 0; // batches taken since the workers started
const STOP = 1; // set: the workers exit
const FAILED = 2; // set by a worker that threw

export abstract class DataLoader<Batch> {
  readonly seq_len: number;
  readonly batch_size: number;
  readonly num_workers: number;
  readonly sampler: DistributedSampler;
  /** Chunks in the dataset. */
  readonly num_samples: number;
  private start = 0; // the chunk the current pass of workers started from
  private taken = 0; // batches taken since then
  private workers: Prefetch | null = null;

  constructor(
    protected readonly tokens: Int32Array,
    opts: DataLoaderOptions,
  ) {
    this.seq_len = opts.seq_len;
    this.batch_size = opts.batch_size;
    this.num_workers = opts.num_workers;
    this.sampler = opts.sampler ?? new DistributedSampler(1, 0);
    this.num_samples = numChunks(tokens.length, opts.seq_len);
  }

  /** Turns a batch's chunks, [batch_size, seq_len + 1] tokens, into the batch (torch's collate_fn). */
  protected abstract collate_batch(rows: Int32Array): Batch;

  /** Chunks consumed by all replicas together: where the run is in the data. */
  get next_sample(): number {
    return this.start + this.taken * this.batch_size * this.sampler.num_replicas;
  }

  /** Goes on from chunk n (a resumed run); batches gathered ahead from elsewhere are dropped. */
  seek(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.num_samples)
      throw new RangeError(
        `dataloader state: next_sample ${n} is outside the dataset's ${this.num_samples} chunks`,
      );
    this.close();
    this.start = n;
    this.taken = 0;
  }

  /** The next batch. */
  next(): Batch {
    const k = this.taken;
    const last = this.chunk(k, this.batch_size - 1);
    if (last >= this.num_samples)
      throw new RangeError(`the dataset's ${this.num_samples} chunks are used up (asked for chunk ${last})`);
    let rows: Int32Array;
    if (this.num_workers === 0) {
      rows = new Int32Array(this.batch_size * (this.seq_len + 1));
      for (let b = 0; b < this.batch_size; b++) {
        const from = this.chunk(k, b) * this.seq_len;
        rows.set(this.tokens.subarray(from, from + this.seq_len + 1), b * (this.seq_len + 1));
      }
    } else {
      const { seq_len, batch_size, num_workers, num_samples, start, sampler } = this;
      const { num_replicas, rank } = sampler;
      const plan = { seq_len, batch_size, num_workers, num_samples, start, num_replicas, rank };
      this.workers ??= new Prefetch(this.tokens, plan);
      rows = this.workers.take(k);
    }
    this.taken += 1;
    return this.collate_batch(rows);
  }

  /** Stops the worker threads (they also end with the process). */
  close(): void {
    this.workers?.close();
    this.workers = null;
  }

  /** The dataset index of sample b of batch k (both counted from `start`). */
  private chunk(k: number, b: number): number {
    return this.start + k * this.batch_size * this.sampler.num_replicas + this.sampler.index(b);
  }
}

/** What a worker thread needs to find batch k's chunks (the same arithmetic as DataLoader.chunk). */
interface Plan {
  seq_len: number;
  batch_size: number;
  num_workers: number;
  num_samples: number;
  start: number;
  num_replicas: number;
  rank: number;
}

/** The worker threads and the shared memory they fill: 2 x num_workers slots of one batch each. */
class Prefetch {
  private readonly control = new Int32Array(new SharedArrayBuffer(3 * 4));
  private readonly ready: Int32Array; // the batch each slot holds, -1: none yet
  private readonly slots: Int32Array;
  private readonly threads: Worker[];
  private readonly batchLength: number;

  constructor(tokens: Int32Array, plan: Plan) {
    const numSlots = 2 * plan.num_workers;
    this.batchLength = plan.batch_size * (plan.seq_len + 1);
    this.ready = new Int32Array(new SharedArrayBuffer(numSlots * 4)).fill(-1);
    this.slots = new Int32Array(new SharedArrayBuffer(numSlots * this.batchLength * 4));
    const shared = new Int32Array(new SharedArrayBuffer(tokens.byteLength));
    shared.set(tokens);
    const { control, ready, slots } = this;
    this.threads = Array.from({ length: plan.num_workers }, (_, worker) => {
      const thread = new Worker(new URL("./data_loader_worker.mjs", import.meta.url), {
        workerData: { plan, worker, tokens: shared, control, ready, slots },
      });
      thread.unref(); // a finished run exits without waiting for them
      return thread;
    });
  }

  /** Batch k's chunks, copied out of its slot; the slot is then free for batch k + 2 x num_workers. */
  take(k: number): Int32Array {
    const slot = k % this.ready.length;
    const deadline = performance.now() + WORKER_STALL_MS;
    for (let held = Atomics.load(this.ready, slot); held !== k; held = Atomics.load(this.ready, slot)) {
      if (Atomics.load(this.control, FAILED)) throw new Error("a dataloader worker thread failed (above)");
      if (performance.now() > deadline)
        throw new Error(`no dataloader worker thread delivered batch ${k} in ${WORKER_STALL_MS / 1e3} s`);
      Atomics.wait(this.ready, slot, held, 1000);
    }
    const offset = slot * this.batchLength;
    const rows = this.slots.slice(offset, offset + this.batchLength);
    Atomics.store(this.control, CONSUMED, k + 1);
    Atomics.notify(this.control, CONSUMED);
    return rows;
  }

  close(): void {
    Atomics.store(this.control, STOP, 1);
    Atomics.notify(this.control, CONSUMED);
    for (const thread of this.threads) void thread.terminate();
  }
}
