// Gradient buckets (the tutorial's bucket.py): the parameters' gradients live in a few flat float32
// buffers, each all-reduced as one message instead of one message per parameter, and in the background
// (iallreduce) as soon as the backward pass has produced the last gradient of the bucket, so the
// communication of the late layers' gradients overlaps the backward pass through the early layers.
import { type Comm, type Request, waitAll } from "@picotron/mpi-napi";
import { Tensor } from "@picotron/tensor";

/** The bucket size in float32 elements for a cap in MiB (as torch DDP's bucket_cap_mb); refuses a cap <= 0. */
export function bucketSizeFromCap(bucketCapMb: number): number {
  if (!(bucketCapMb > 0) || !Number.isFinite(bucketCapMb)) {
    throw new RangeError(`--bucket_cap_mb must be a positive number, got ${bucketCapMb}`);
  }
  return Math.max(1, Math.floor((bucketCapMb * 1024 * 1024) / Float32Array.BYTES_PER_ELEMENT));
}

/**
 * Groups the parameters into buckets of at most `bucketSize` elements, in the order given. A parameter larger
 * than a bucket gets a bucket of its own (it cannot be split: its gradient is one view).
 */
export function assignBuckets<P extends Tensor>(params: readonly P[], bucketSize: number): P[][] {
  const buckets: P[][] = [];
  let current: P[] = [];
  let size = 0;
  for (const p of params) {
    if (current.length > 0 && size + p.numel > bucketSize) {
      buckets.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += p.numel;
  }
  if (current.length > 0) buckets.push(current);
  return buckets;
}

/** When a bucket's all-reduce was launched and seen complete (performance.now() ms): for traces and tests. */
export interface BucketTrace {
  launchedAt: number;
  completedAt: number;
  /** "test": seen complete by a progress call during the backward pass; "wait": only by the final wait. */
  completedBy: "test" | "wait" | null;
}

export class Bucket {
  /** The parameters' gradients, back to back: each parameter's .grad is a view of its slice. */
  readonly grads: Float32Array;
  /** The last synchronization's timeline. */
  trace: BucketTrace = { launchedAt: NaN, completedAt: NaN, completedBy: null };
  private readonly ready = new Set<Tensor>();
  #request: Request | null = null;

  constructor(
    readonly params: readonly Tensor[],
    private readonly dpGroup: Comm,
  ) {
    this.grads = new Float32Array(params.reduce((n, p) => n + p.numel, 0));
    let offset = 0;
    for (const p of params) {
      // The autograd engine adds into an existing .grad in place, so every micro-batch accumulates here
      // (in float32) and the bucket needs no copy before its all-reduce.
      p.grad = new Tensor(this.grads, p.shape, undefined, offset);
      offset += p.numel;
    }
  }

  /** Whether p's .grad is its view of this bucket. */
  holds(p: Tensor): boolean {
    return p.grad !== null && p.grad.storage === this.grads;
  }

  /** Called once per parameter per synchronized backward pass; the last one launches the all-reduce. */
  markParamAsReady(p: Tensor): void {
    if (this.ready.has(p)) throw new Error("a parameter was marked ready twice in one backward pass");
    this.ready.add(p);
    if (this.ready.size === this.params.length) {
      this.trace = { launchedAt: performance.now(), completedAt: NaN, completedBy: null };
      this.#request = this.dpGroup.iallreduce(this.grads, "avg");
    }
  }

  /** The all-reduce of the current synchronization (null until every parameter is ready). */
  get request(): Request | null {
    return this.#request;
  }

  /** Every parameter is ready and the all-reduce started (until clearSync). */
  get launched(): boolean {
    return this.#request !== null;
  }

  /** The all-reduce is launched and not yet seen complete. */
  get inFlight(): boolean {
    return this.launched && this.trace.completedBy === null;
  }

  /**
   * Lets MPI move the all-reduce on, and notes when it completes. OpenMPI runs no progress thread: a
   * non-blocking collective only advances inside MPI calls, so the backward pass calls this between ops.
   */
  progress(): void {
    if (this.inFlight && this.#request!.test()) this.completed("test");
  }

  completed(by: "test" | "wait"): void {
    this.trace.completedAt = performance.now();
    this.trace.completedBy = by;
  }

  /** The parameters that have not produced their gradient in this backward pass. */
  missing(): Tensor[] {
    return this.params.filter((p) => !this.ready.has(p));
  }

  /** Ready for the next synchronized backward pass (zeroGrad(false) zeroes the gradients themselves). */
  clearSync(): void {
    this.ready.clear();
    this.#request = null;
  }
}

export class BucketManager {
  readonly buckets: Bucket[];
  private readonly bucketOf = new Map<Tensor, Bucket>();

  /** params in the order the backward pass produces their gradients (the reverse of the forward's). */
  constructor(params: readonly Tensor[], dpGroup: Comm, bucketSize: number) {
    this.buckets = assignBuckets(params, bucketSize).map((group) => new Bucket(group, dpGroup));
    for (const b of this.buckets) for (const p of b.params) this.bucketOf.set(p, b);
  }

  /** Whether p's .grad is still its view of its bucket (zeroGrad() with setToNone would drop it). */
  holds(p: Tensor): boolean {
    return this.bucketOf.get(p)?.holds(p) ?? false;
  }

  markParamAsReady(p: Tensor): void {
    const bucket = this.bucketOf.get(p);
    if (!bucket) throw new Error("markParamAsReady: this parameter is not in any bucket");
    bucket.markParamAsReady(p);
  }

  /** A progress call on every all-reduce in flight. */
  progress(): void {
    for (const b of this.buckets) b.progress();
  }

  /** Waits for every bucket's all-reduce (one MPI_Waitall); afterwards every gradient is the dp average. */
  waitAll(): void {
    const notLaunched = this.buckets.filter((b) => !b.launched);
    if (notLaunched.length > 0) {
      const count = notLaunched.reduce((n, b) => n + b.missing().length, 0);
      throw new Error(
        `gradient synchronization: ${count} parameter(s) got no gradient in the synchronized backward pass, ` +
          "so their buckets never started their all-reduce (every parameter must take part in the loss)",
      );
    }
    const pending = this.buckets.filter((b) => b.inFlight);
    waitAll(pending.map((b) => b.request!));
    for (const b of pending) b.completed("wait");
    for (const b of this.buckets) b.clearSync();
  }
}
