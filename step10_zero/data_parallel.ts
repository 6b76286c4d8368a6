// Data parallelism (the tutorial's data_parallel.py): every dp rank holds a full replica of the model and
// trains on its own share of the global batch; before the optimizer step, each parameter's gradient is
// averaged over the dp group, so every replica takes the same step as the 1-rank run would on the whole
// global batch, and the replicas stay identical.
//
// DataParallelNaive (step 5): one blocking all-reduce per parameter, fired from a gradient hook during the
// backward pass: many small messages, and the backward pass stops for each one. dp.bench.ts compares it with
// DataParallelBucket (step 6), as torch's DistributedDataParallel: the gradients live in flat buckets
// (Bucket, BucketManager); a bucket's all-reduce starts in the background the moment its last gradient is ready and
// proceeds while the backward pass computes the earlier layers' gradients; after the backward pass, one
// wait collects whatever is still in flight.

import { type Comm, type Request, waitAll } from "@picotron/mpi-napi";
import { type nn, Tensor } from "@picotron/tensor";

export class DataParallelNaive<M extends nn.Module & { forward(input: Tensor): Tensor }> {
  /** Whether this backward pass averages the gradients (with accumulation: the last micro-batch's only). */
  require_backward_grad_sync = true;

  constructor(
    readonly module: M,
    readonly dpGroup: Comm,
  ) {
    for (const p of module.parameters()) {
      // The tutorial hooks the gradient flowing into the parameter (register_hook), which all-reduces only
      // the last micro-batch's contribution and leaves the earlier ones unsynchronized. This hook fires
      // after the backward pass has added into .grad, so it averages the fully accumulated gradient.
      p.registerPostAccumulateGradHook((param) => {
        if (this.require_backward_grad_sync) this._allreduce_grads(param);
      });
    }
  }

  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  private _allreduce_grads(param: Tensor): void {
    // The leaf's .grad is contiguous (the engine accumulates into it), so values() is a view of it:
    // MPI averages it in place.
    this.dpGroup.allreduce(param.grad!.values() as Float32Array, "avg");
  }
}

// ---- Gradient buckets ----
// The parameters' gradients live in a few flat float32 buffers, each all-reduced as one message instead of
// one message per parameter, and in the background (iallreduce) as soon as the backward pass has produced
// the last gradient of the bucket, so the communication of the late layers' gradients overlaps the backward
// pass through the early layers.

/** The bucket size in float32 elements for a cap in MiB (as torch DDP's bucket_cap_mb); refuses a cap <= 0. */
export function bucketSizeFromCap(bucket_cap_mb: number): number {
  if (!(bucket_cap_mb > 0) || !Number.isFinite(bucket_cap_mb)) {
    throw new RangeError(`--bucket_cap_mb must be a positive number, got ${bucket_cap_mb}`);
  }
  return Math.max(1, Math.floor((bucket_cap_mb * 1024 * 1024) / Float32Array.BYTES_PER_ELEMENT));
}

/**
 * Groups the parameters into buckets of at most `bucket_size` elements, in the order given. A parameter larger
 * than a bucket gets a bucket of its own (it cannot be split: its gradient is one view).
 */
export function assignBuckets<P extends Tensor>(params: readonly P[], bucket_size: number): P[][] {
  const buckets: P[][] = [];
  let current: P[] = [];
  let size = 0;
  for (const p of params) {
    if (current.length > 0 && size + p.numel > bucket_size) {
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
  readonly grad_data: Float32Array;
  /** The last synchronization's timeline. */
  trace: BucketTrace = { launchedAt: NaN, completedAt: NaN, completedBy: null };
  private readonly params_with_grad_ready = new Set<Tensor>();
  #handle: Request | null = null;

  constructor(
    readonly params: readonly Tensor[],
    private readonly process_group: Comm,
  ) {
    this.grad_data = new Float32Array(params.reduce((n, p) => n + p.numel, 0));
    let offset = 0;
    for (const p of params) {
      // The autograd engine adds into an existing .grad in place, so every micro-batch accumulates here
      // (in float32) and the bucket needs no copy before its all-reduce.
      p.grad = new Tensor(this.grad_data, p.shape, undefined, offset);
      offset += p.numel;
    }
  }

  /** Whether p's .grad is its view of this bucket. */
  holds(p: Tensor): boolean {
    return p.grad !== null && p.grad.storage === this.grad_data;
  }

  /** Called once per parameter per synchronized backward pass; the last one launches the all-reduce. */
  mark_param_as_ready(p: Tensor): void {
    if (this.params_with_grad_ready.has(p))
      throw new Error("a parameter was marked ready twice in one backward pass");
    this.params_with_grad_ready.add(p);
    if (this.params_with_grad_ready.size === this.params.length) {
      this.trace = { launchedAt: performance.now(), completedAt: NaN, completedBy: null };
      this.#handle = this.process_group.iallreduce(this.grad_data, "avg");
    }
  }

  /** The all-reduce of the current synchronization (null until every parameter is ready). */
  get handle(): Request | null {
    return this.#handle;
  }

  /** Every parameter is ready and the all-reduce started (until clearSync). */
  get launched(): boolean {
    return this.#handle !== null;
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
    if (this.inFlight && this.#handle!.test()) this.completed("test");
  }

  completed(by: "test" | "wait"): void {
    this.trace.completedAt = performance.now();
    this.trace.completedBy = by;
  }

  /** The parameters that have not produced their gradient in this backward pass. */
  missing(): Tensor[] {
    return this.params.filter((p) => !this.params_with_grad_ready.has(p));
  }

  /** Ready for the next synchronized backward pass (zeroGrad(false) zeroes the gradients themselves). */
  clearSync(): void {
    this.params_with_grad_ready.clear();
    this.#handle = null;
  }
}

export class BucketManager {
  readonly buckets: Bucket[];
  private readonly bucketOf = new Map<Tensor, Bucket>();

  /** params in the order the backward pass produces their gradients (the reverse of the forward's). */
  constructor(params: readonly Tensor[], process_group: Comm, bucket_size: number) {
    this.buckets = assignBuckets(params, bucket_size).map((group) => new Bucket(group, process_group));
    for (const b of this.buckets) for (const p of b.params) this.bucketOf.set(p, b);
  }

  /** Whether p's .grad is still its view of its bucket (zeroGrad() with setToNone would drop it). */
  holds(p: Tensor): boolean {
    return this.bucketOf.get(p)?.holds(p) ?? false;
  }

  mark_param_as_ready(p: Tensor): void {
    const bucket = this.bucketOf.get(p);
    if (!bucket) throw new Error("mark_param_as_ready: this parameter is not in any bucket");
    bucket.mark_param_as_ready(p);
  }

  /** A progress call on every all-reduce in flight. */
  progress(): void {
    for (const b of this.buckets) b.progress();
  }

  /** Waits for every bucket's all-reduce (one MPI_Waitall); afterwards every gradient is the dp average. */
  wait(): void {
    const notLaunched = this.buckets.filter((b) => !b.launched);
    if (notLaunched.length > 0) {
      const count = notLaunched.reduce((n, b) => n + b.missing().length, 0);
      throw new Error(
        `gradient synchronization: ${count} parameter(s) got no gradient in the synchronized backward pass, ` +
          "so their buckets never started their all-reduce (every parameter must take part in the loss)",
      );
    }
    const pending = this.buckets.filter((b) => b.inFlight);
    waitAll(pending.map((b) => b.handle!));
    for (const b of pending) b.completed("wait");
    for (const b of this.buckets) b.clearSync();
  }
}

export class DataParallelBucket<M extends nn.Module & { forward(input: Tensor): Tensor }> {
  /**
   * Whether this backward pass averages the gradients. With gradient accumulation the loop sets it to true
   * for the last micro-batch only: the earlier ones just accumulate into the buckets.
   */
  require_backward_grad_sync = true;
  readonly bucket_manager: BucketManager;

  constructor(
    readonly module: M,
    readonly dpGroup: Comm,
    bucket_cap_mb = 25,
  ) {
    // The backward pass produces the gradients roughly in the reverse order of the parameters' registration
    // (last layer first): buckets in that order fill up, and start their all-reduce, one after another.
    const params = module.parameters().reverse();
    this.bucket_manager = new BucketManager(params, dpGroup, bucketSizeFromCap(bucket_cap_mb));
    for (const p of params) {
      // Fires once the backward pass has added this backward's gradient into p.grad, a view of the bucket.
      p.registerPostAccumulateGradHook((param) => this.onGradAccumulated(param));
    }
  }

  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  private onGradAccumulated(param: Tensor): void {
    if (!this.bucket_manager.holds(param)) {
      throw new Error(
        "a parameter's .grad is no longer a view of its gradient bucket: clear gradients with " +
          "optimizer.zeroGrad(false), which zeroes them in place, not zeroGrad() (which drops them)",
      );
    }
    if (this.require_backward_grad_sync) this.bucket_manager.mark_param_as_ready(param);
    // The hooks fire between the backward pass's ops: the only moments the in-flight all-reduces can move on.
    this.bucket_manager.progress();
  }

  /**
   * Waits for every bucket's all-reduce: call it after the last (synchronized) backward pass of the step,
   * before clipping and the optimizer step. (The tutorial queues it as an autograd callback at the end of
   * the backward pass; our engine has no such callback, so the training loop calls it.)
   */
  finishGradientSynchronization(): void {
    this.bucket_manager.wait();
  }
}
