// ZeRO (Rajbhandari et al., 2020; torch's ZeroRedundancyOptimizer and FSDP): the dp replicas of step 6 each
// hold the whole training state, of Ψ parameters in fp32 4Ψ bytes of weights, 4Ψ of gradients and 8Ψ of
// AdamW moments (m and v). All of it is the same on every replica, except the gradients before their
// average. ZeRO cuts that redundancy over the dp group of size N:
//   stage 1: each rank keeps the moments of 1/N of the parameters, updates only them, and all-gathers the
//            updated weights: 4Ψ + 4Ψ + 8Ψ/N bytes per rank. It needs only its block of the averaged
//            gradients: each bucket is reduce-scattered instead of all-reduced;
//   stage 2: the gradients sharded too: the full gradients are dropped once sent, each rank keeping its
//            block: 4Ψ + 12Ψ/N.
// (Stage 3 also shards the weights, all-gathered layer by layer around forward and backward: not here.)
//
// The unit of sharding is step 6's gradient bucket: its params laid back to back, n elements, cut into N
// blocks of S = ceil(n / N) (the last ones padded with zeros): rank r owns flat elements [r S, (r + 1) S).
// Communication per step: a reduce-scatter plus an all-gather move (N - 1)/N of the data each, as much as
// the one all-reduce of step 6 (which is a reduce-scatter followed by an all-gather).
import { type Comm, type Request, waitAll } from "@picotron/mpi-napi";
import { type nn, optim, Tensor } from "@picotron/tensor";
import { assignBuckets, bucketSizeFromCap } from "./data_parallel.ts";

/** A bucket's params back to back: where each starts in the flat layout, and this rank's block. */
class FlatLayout {
  readonly offsets: number[] = [];
  readonly numel: number;
  /** S: the elements of each rank's block (the flat layout padded to N x S). */
  readonly shard_size: number;
  /** This rank's block, [lo, hi) of the flat elements (hi - lo < S for the last ranks: the padding). */
  readonly lo: number;
  readonly hi: number;

  constructor(
    readonly params: readonly Tensor[],
    readonly group: Comm,
  ) {
    let n = 0;
    for (const p of params) {
      this.offsets.push(n);
      n += p.numel;
    }
    this.numel = n;
    this.shard_size = Math.ceil(n / group.size);
    this.lo = Math.min(n, group.rank * this.shard_size);
    this.hi = Math.min(n, this.lo + this.shard_size);
  }
}

// ---- The gradients reduce-scattered ----

/** A bucket whose averaged gradients each rank gets only its block of. */
export class ReduceScatterBucket extends FlatLayout {
  /**
   * The full gradients, N x S floats. Stage 1: for good; each parameter's .grad is a view, the micro-batches
   * accumulate in place, and the rank's block is overwritten with its average. Stage 2: only this backward
   * pass's, until they are reduce-scattered.
   */
  grad_data: Float32Array | null = null;
  /** Stage 2: this rank's block of the averaged gradients, summed over the micro-batches (S floats). */
  readonly grad_shard: Float32Array | null = null;
  private recv: Float32Array | null = null;
  private handle: Request | null = null;
  private readonly ready = new Set<Tensor>();

  constructor(
    params: readonly Tensor[],
    group: Comm,
    readonly zero_stage: number,
  ) {
    super(params, group);
    if (zero_stage >= 2) this.grad_shard = new Float32Array(this.shard_size);
    else {
      this.grad_data = new Float32Array(this.shard_size * group.size);
      params.forEach((p, i) => (p.grad = new Tensor(this.grad_data!, p.shape, undefined, this.offsets[i])));
    }
  }

  /** p's gradient of this backward pass is complete; the bucket's last one starts the reduce-scatter. */
  mark_param_as_ready(p: Tensor, i: number, sync: boolean): void {
    if (this.handle) this.complete(); // the previous micro-batch's reduce-scatter, before its buffers go
    if (this.grad_shard) {
      // stage 2: every micro-batch is synchronized; the full gradient lives on only in the bucket
      this.grad_data ??= new Float32Array(this.shard_size * this.group.size);
      this.grad_data.set(p.grad!.values(), this.offsets[i]!);
      p.grad = null;
    } else if (!sync) return; // stage 1, an early micro-batch: accumulate only
    if (this.ready.has(p)) throw new Error("a parameter was marked ready twice in one backward pass");
    this.ready.add(p);
    if (this.ready.size === this.params.length) {
      this.recv = new Float32Array(this.shard_size);
      // block r of the dp average lands on rank r; the padding averages zeros
      this.handle = this.group.ireduceScatter(this.grad_data!, this.recv, "avg");
    }
  }

  get inFlight(): Request | null {
    return this.handle;
  }

  /** Partly filled: some parameters got no gradient in this backward pass. */
  get incomplete(): boolean {
    return this.ready.size > 0 && this.handle === null;
  }

  /** Lets the reduce-scatter move on (OpenMPI has no progress thread), completing it when done. */
  progress(): void {
    if (this.handle?.test()) this.complete();
  }

  /** Waits for the reduce-scatter if needed, stores the averaged block (stage 2: frees the full grads). */
  complete(): void {
    if (!this.handle!.done) this.handle!.wait();
    const [shard, recv] = [this.grad_shard, this.recv!];
    if (shard) for (let j = 0; j < shard.length; j++) shard[j]! += recv[j]!;
    else this.grad_data!.set(recv, this.group.rank * this.shard_size);
    if (shard) this.grad_data = null;
    this.recv = this.handle = null;
    this.ready.clear();
  }

  zeroGrad(): void {
    (this.grad_shard ?? this.grad_data!).fill(0);
  }
}

/**
 * Step 6's bucketed data parallelism with a reduce-scatter for the all-reduce. Stage 1 synchronizes the last
 * micro-batch, as step 6. Stage 2 synchronizes every micro-batch (require_backward_grad_sync is ignored):
 * accumulating the full gradients would keep 4Ψ bytes; instead each micro-batch's averaged block is added
 * into the rank's gradient shard, at the cost of one reduce-scatter per micro-batch.
 */
export class DataParallelReduceScatter<M extends nn.Module & { forward(input: Tensor): Tensor }> {
  require_backward_grad_sync = true;
  readonly buckets: ReduceScatterBucket[];

  constructor(
    readonly module: M,
    readonly dpGroup: Comm,
    bucket_cap_mb: number,
    zero_stage: number,
  ) {
    // the backward's order, as in step 6: the late layers' buckets fill and start first
    const params = module.parameters().reverse();
    const size = bucketSizeFromCap(bucket_cap_mb);
    this.buckets = assignBuckets(params, size).map((g) => new ReduceScatterBucket(g, dpGroup, zero_stage));
    for (const b of this.buckets) {
      b.params.forEach((p, i) =>
        p.registerPostAccumulateGradHook(() => {
          b.mark_param_as_ready(p, i, this.require_backward_grad_sync);
          for (const other of this.buckets) other.progress(); // between ops: the moments MPI can move on
        }),
      );
    }
  }

  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  /** Waits for the reduce-scatters in flight: after it, each rank holds the average of its blocks. */
  finishGradientSynchronization(): void {
    if (this.buckets.some((b) => b.incomplete))
      throw new Error(
        "gradient synchronization: a parameter got no gradient in the backward pass, so its bucket never " +
          "started its reduce-scatter (every parameter must take part in the loss)",
      );
    const pending = this.buckets.filter((b) => b.inFlight);
    waitAll(pending.map((b) => b.inFlight!));
    for (const b of pending) b.complete();
  }
}

// ---- Stages 1 and 2: the optimizer sharded ----

type Forward = nn.Module & { forward(input: Tensor): Tensor };

/** The elements [from, to) of a bucket's parameter that fall in this rank's block. */
interface Piece {
  param: number;
  from: number;
  to: number;
}

/**
 * AdamW over this rank's block of every bucket. Its parameters are pieces: views of the slices of the model's
 * parameters the block covers, so the update writes the weights in place and the moments cover exactly the
 * block (8Ψ/N bytes). Each piece's gradient is a view of the bucket's averaged block. After the step, each
 * bucket's weights are all-gathered, so every replica holds the whole updated model again.
 */
export class ZeroRedundancyOptimizer extends optim.AdamW {
  private readonly layouts: FlatLayout[];
  private readonly pieces: Piece[][];
  private readonly modelParams: Tensor[];

  constructor(
    readonly dp_model: DataParallelReduceScatter<Forward>,
    options: optim.AdamWOptions,
  ) {
    const layouts = dp_model.buckets;
    const pieces = layouts.map(({ params, offsets, lo, hi }) =>
      params.flatMap((p, i) => {
        if (p.offset !== 0 || p.storage.length !== p.numel)
          throw new Error("ZeRO: a parameter is not the whole of its storage");
        const [from, to] = [
          Math.max(lo, offsets[i]!) - offsets[i]!,
          Math.min(hi, offsets[i]! + p.numel) - offsets[i]!,
        ];
        return from < to ? [{ param: i, from, to }] : [];
      }),
    );
    const tensors = layouts.flatMap((b, k) =>
      pieces[k]!.map(({ param, from, to }) => {
        const piece = new Tensor(b.params[param]!.storage.subarray(from, to), [to - from]);
        const at = b.offsets[param]! + from; // the piece's first flat element
        // stage 2: a view of the rank's gradient shard; stage 1: of its averaged block of the full gradients
        piece.grad = b.grad_shard
          ? new Tensor(b.grad_shard, [to - from], undefined, at - b.lo)
          : new Tensor(b.grad_data!, [to - from], undefined, at);
        return piece;
      }),
    );
    super(tensors, options);
    this.layouts = layouts;
    this.pieces = pieces;
    this.modelParams = dp_model.module.parameters();
  }

  /** Zeroes the gradients in place: stage 1 the whole buckets (the micro-batches add there), 2 the shards. */
  override zeroGrad(): void {
    for (const b of this.dp_model.buckets) b.zeroGrad();
  }

  /** The update of this rank's block, then every bucket's weights all-gathered. */
  override step(): void {
    super.step();
    let k = 0;
    this.layouts.forEach((l, b) => {
      const flat = new Float32Array(l.shard_size * l.group.size); // transient: one bucket's weights
      const block = flat.subarray(l.group.rank * l.shard_size, (l.group.rank + 1) * l.shard_size);
      for (const { param, from } of this.pieces[b]!)
        block.set(this.params[k++]!.storage, l.offsets[param]! + from - l.lo); // the updated pieces
      l.group.allgather(block, flat); // in place: the block is this rank's slot
      l.params.forEach((p, i) => p.storage.set(flat.subarray(l.offsets[i]!, l.offsets[i]! + p.numel)));
    });
  }

  /**
   * Squares of the gradients summed over the whole model's shard on this (tp, pp) position, the dp ranks'
   * blocks added: [those of the tp-sharded parameters, those of the replicated ones].
   */
  gradSquares(tpSharded: ReadonlySet<Tensor>): [number, number] {
    const sums = new Float64Array(2);
    let k = 0;
    this.layouts.forEach((l, b) =>
      this.pieces[b]!.forEach(({ param }) => {
        sums[tpSharded.has(l.params[param]!) ? 0 : 1] += optim.gradSquaredSum([this.params[k++]!]);
      }),
    );
    this.layouts[0]?.group.allreduce(sums, "sum");
    return [sums[0]!, sums[1]!];
  }

  /**
   * The moments of the whole model's shard, gathered from every dp rank into a plain AdamW over the model's
   * parameters (collective: every dp rank calls it): the format every layout's checkpoints have.
   */
  gatherState(): optim.AdamW {
    const full = new optim.AdamW(this.modelParams, { lr: this.lr, weightDecay: this.weightDecay });
    full.stepCount = this.stepCount;
    this.copyMoments(full, "gather");
    return full;
  }

  /** Takes this rank's block of the moments of a plain AdamW over the model's parameters (a checkpoint's). */
  loadState(full: optim.AdamW): void {
    this.stepCount = full.stepCount;
    this.copyMoments(full, "scatter");
  }

  private copyMoments(full: optim.AdamW, direction: "gather" | "scatter"): void {
    const mine = this.stateDict().tensors;
    const whole = full.stateDict().tensors; // views of the moments: written in place
    const index = new Map(this.modelParams.map((p, j) => [p, j]));
    let k = 0;
    this.layouts.forEach((l, b) => {
      const flat = new Float32Array(l.shard_size * l.group.size);
      const block = flat.subarray(l.group.rank * l.shard_size, (l.group.rank + 1) * l.shard_size);
      for (const moment of ["exp_avg", "exp_avg_sq"]) {
        const ofParam = (i: number) =>
          whole[`state.${index.get(l.params[i]!)}.${moment}`]!.values() as Float32Array;
        this.pieces[b]!.forEach(({ param, from, to }, n) => {
          const own = mine[`state.${k + n}.${moment}`]!.values() as Float32Array;
          if (direction === "scatter") own.set(ofParam(param).subarray(from, to));
          else block.set(own, l.offsets[param]! + from - l.lo);
        });
        if (direction === "gather") {
          l.group.allgather(block, flat);
          l.params.forEach((p, i) => ofParam(i).set(flat.subarray(l.offsets[i]!, l.offsets[i]! + p.numel)));
        }
      }
      k += this.pieces[b]!.length;
    });
  }
}

/** Bytes of the training state this rank holds between steps: weights, gradients, AdamW moments (fp32). */
export function stateBytes(
  model: nn.Module,
  dp_model: unknown,
  optimizer: optim.AdamW,
): { params: number; grads: number; moments: number } {
  const params = model.parameters().reduce((n, p) => n + 4 * p.numel, 0);
  const moments = Object.values(optimizer.stateDict().tensors).reduce((n, t) => n + 4 * t.numel, 0);
  let grads = params; // a single process or step 6's buckets: each parameter's gradient whole
  if (dp_model instanceof DataParallelReduceScatter)
    grads = dp_model.buckets.reduce((n, b) => n + 4 * (b.grad_shard ?? b.grad_data!).length, 0);
  return { params, grads, moments };
}
