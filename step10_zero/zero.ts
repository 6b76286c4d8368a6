// ZeRO (Rajbhandari et al., 2020; torch's ZeroRedundancyOptimizer and FSDP). Step 6's N replicas each hold
// 4Ψ bytes of weights, 4Ψ of gradients and 8Ψ of AdamW moments (fp32, Ψ parameters). ZeRO shards them:
//   stage 1: the moments: each rank updates its 1/N of the weights, then all-gathers them: 8Ψ + 8Ψ/N;
//   stage 2: the gradients too, reduce-scattered instead of all-reduced: 4Ψ + 12Ψ/N;
//   stage 3 (FSDP): the weights too, gathered layer by layer around forward and backward: 16Ψ/N.
// The unit is a bucket (stage 3: a layer), its params back to back, n elements, cut into N blocks of
// S = ceil(n / N) (the last ones padded): rank r owns the flat elements [r S, (r + 1) S).
import { type Comm, type Request, waitAll } from "@picotron/mpi-napi";
import { tracer } from "@picotron/profiler";
import { defineFunction, nn, optim, Tensor } from "@picotron/tensor";
import { assignBuckets, bucketSizeFromCap } from "./data_parallel.ts";

/** A bucket's params back to back: where each starts in the flat layout, and this rank's block. */
class FlatLayout {
  readonly offsets: number[] = [];
  /** S: the elements of each rank's block (the flat layout padded to N x S). */
  readonly shard_size: number;
  /** Where this rank's block starts in the flat elements (the last ranks' hold fewer than S: the padding). */
  readonly lo: number;
  /** The elements [from, to) of the bucket's parameter `param` that fall in this rank's block. */
  readonly pieces: { param: number; from: number; to: number }[];

  constructor(
    readonly params: readonly Tensor[],
    readonly group: Comm,
  ) {
    let n = 0;
    for (const p of params) {
      if (p.offset !== 0 || p.storage.length !== p.numel) throw new Error("ZeRO: a parameter is not whole");
      this.offsets.push(n);
      n += p.numel;
    }
    this.shard_size = Math.ceil(n / group.size);
    this.lo = Math.min(n, group.rank * this.shard_size);
    const hi = Math.min(n, this.lo + this.shard_size);
    this.pieces = params.flatMap((p, i) => {
      const [from, to] = [Math.max(this.lo, this.offsets[i]!), Math.min(hi, this.offsets[i]! + p.numel)];
      return from < to ? [{ param: i, from: from - this.offsets[i]!, to: to - this.offsets[i]! }] : [];
    });
  }

  /** This rank's block (S floats), piece n's values at its place. */
  block(pieceValues: (n: number, piece: FlatLayout["pieces"][number]) => ArrayLike<number>): Float32Array {
    const block = new Float32Array(this.shard_size);
    for (const [n, piece] of this.pieces.entries())
      block.set(pieceValues(n, piece), this.offsets[piece.param]! + piece.from - this.lo);
    return block;
  }

  /** Every rank's block all-gathered: each param's whole values, views of one transient N x S buffer. */
  allgather(block: Float32Array): Float32Array[] {
    const flat = new Float32Array(this.shard_size * this.group.size);
    this.group.allgather(block, flat);
    return this.params.map((p, i) => flat.subarray(this.offsets[i]!, this.offsets[i]! + p.numel));
  }
}

// ---- The gradients reduce-scattered ----

/** A bucket whose averaged gradients each rank gets only its block of. */
export class ReduceScatterBucket extends FlatLayout {
  /** The full gradients, N x S: stage 1 for good (the .grads are views); stages 2, 3 until reduce-scattered. */
  grad_data: Float32Array | null = null;
  /** Stages 2 and 3: this rank's block of the averaged gradients, summed over the micro-batches. */
  readonly grad_shard: Float32Array | null = null;
  private recv: Float32Array | null = null;
  handle: Request | null = null; // the reduce-scatter in flight
  private readonly ready = new Set<Tensor>();

  constructor(params: readonly Tensor[], group: Comm, zero_stage: number) {
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
      // stages 2 and 3: every micro-batch is synchronized; the full gradient lives on only in the bucket
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

// ---- Stage 3: the weights sharded too ----

type Unit = nn.Module & { forward(...args: never[]): Tensor };

/**
 * A layer (the embedding, a decoder layer, the final norm or projection) of which this rank keeps only its block
 * of the weights. Its forward is wrapped: all-gather, run, free; and its output passes through an identity
 * whose backward all-gathers them again for the layer's backward (FSDP's pre-backward hook). Its gradients are
 * stage 2's; once the last one is in, the backward is done with the weights: freed.
 */
export class ShardedUnit extends ReduceScatterBucket {
  readonly weight_shard = new Float32Array(this.shard_size);

  constructor(
    readonly name: string,
    module: Unit,
    group: Comm,
  ) {
    super(module.parameters(), group, 3);
    this.keepShard();
    const forward = module.forward.bind(module);
    const gatherBeforeBackward = defineFunction({
      name: "ZeRO3Gather",
      forward: (_ctx, y: Tensor) => y,
      backward: (_ctx, grad) => (this.gather("backward"), [grad]),
    });
    module.forward = (...args) => {
      this.gather("forward");
      const y = forward(...args);
      this.free();
      return gatherBeforeBackward(y);
    };
  }

  /** The whole weights from every rank's block: each parameter set_ to its slice of the gathered buffer. */
  gather(before: string): void {
    tracer.span(`all-gather ${this.name} (${before})`, "zero3", () =>
      this.allgather(this.weight_shard).forEach((values, i) => this.params[i]!.set_(values)),
    );
  }

  free(): void {
    for (const p of this.params) p.set_(new Float32Array(0));
  }

  /** Keeps only this rank's block of the whole weights (at the start, and after a checkpoint's load). */
  keepShard(): void {
    this.weight_shard.set(
      this.block((_, { param, from, to }) => this.params[param]!.values().subarray(from, to)),
    );
    this.free();
  }

  override mark_param_as_ready(p: Tensor, i: number, sync: boolean): void {
    super.mark_param_as_ready(p, i, sync);
    if (this.handle) this.free(); // every gradient is in, the reduce-scatter started: backward is done
  }
}

/** Stage 3's units, in forward order: what a Llama or a pipeline stage runs one after another. */
function fsdp_units(model: nn.Module): [string, Unit][] {
  const { embedding, decoder_layers, final_norm, final_proj } = model as unknown as Record<string, object>;
  const layers = Object.entries(decoder_layers ?? {}).map(([i, l]) => [`decoder_layers.${i}`, l]);
  const units = [["embedding", embedding], ...layers, ["final_norm", final_norm], ["final_proj", final_proj]];
  return units.filter((u): u is [string, Unit] => u[1] instanceof nn.Module && u[1].parameters().length > 0);
}

/**
 * Step 6's bucketed data parallelism with a reduce-scatter for the all-reduce. Stage 1 synchronizes the last
 * micro-batch, as step 6. Stages 2 and 3 synchronize every micro-batch (require_backward_grad_sync is
 * ignored): accumulating the full gradients would keep 4Ψ bytes; instead each micro-batch's averaged block is
 * added into the rank's gradient shard, at the cost of one reduce-scatter per micro-batch.
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
    this.buckets =
      zero_stage === 3
        ? fsdp_units(module)
            .map(([name, u]) => new ShardedUnit(name, u, dpGroup))
            .reverse()
        : assignBuckets(params, bucketSizeFromCap(bucket_cap_mb)).map(
            (g) => new ReduceScatterBucket(g, dpGroup, zero_stage),
          );
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

  /** Stage 3: runs fn (a checkpoint's save or load) on the whole weights, then keeps this rank's block again. */
  withFullWeights<T>(fn: () => T): T {
    const units = this.buckets.filter((b) => b instanceof ShardedUnit);
    for (const u of units) u.gather("checkpoint");
    const result = fn();
    for (const u of units) u.keepShard();
    return result;
  }

  /** Waits for the reduce-scatters in flight: after it, each rank holds the average of its blocks. */
  finishGradientSynchronization(): void {
    if (this.buckets.some((b) => b.incomplete))
      throw new Error("a parameter got no gradient: all must take part in the loss");
    const pending = this.buckets.filter((b) => b.handle);
    waitAll(pending.map((b) => b.handle!));
    for (const b of pending) b.complete();
  }
}

// ---- The optimizer sharded ----

/**
 * AdamW over this rank's block of every bucket: its parameters are pieces, views of the slices of the weights
 * the block covers (stage 3: of the block itself), updated in place, with moments of the block's size (8Ψ/N
 * bytes), gradients views of the bucket's averaged block. After the step, stages 1 and 2 all-gather each
 * bucket's weights, so every replica holds the whole updated model again; stage 3's next forward gathers them.
 */
export class ZeroRedundancyOptimizer extends optim.AdamW {
  private readonly layouts: ReduceScatterBucket[];

  constructor(
    dp_model: DataParallelReduceScatter<nn.Module & { forward(input: Tensor): Tensor }>,
    options: optim.AdamWOptions,
  ) {
    const tensors = dp_model.buckets.flatMap((b) =>
      b.pieces.map(({ param, from, to }) => {
        const at = b.offsets[param]! + from - b.lo; // the piece's first element in the rank's block
        const piece = new Tensor(
          b instanceof ShardedUnit
            ? b.weight_shard.subarray(at, at + to - from)
            : b.params[param]!.storage.subarray(from, to),
          [to - from],
        );
        // stages 2 and 3: a view of the rank's gradient shard; stage 1: of its averaged block of the full ones
        piece.grad = b.grad_shard
          ? new Tensor(b.grad_shard, [to - from], undefined, at)
          : new Tensor(b.grad_data!, [to - from], undefined, b.lo + at);
        return piece;
      }),
    );
    super(tensors, options);
    this.layouts = dp_model.buckets;
  }

  /** Zeroes the gradients in place: stage 1 the whole buckets (the micro-batches add there), else the shards. */
  override zeroGrad(): void {
    for (const b of this.layouts) b.zeroGrad();
  }

  /** The update of this rank's block, then (stages 1 and 2) every bucket's weights all-gathered. */
  override step(): void {
    super.step();
    let k = 0;
    for (const l of this.layouts) {
      const first = k;
      k += l.pieces.length;
      if (l instanceof ShardedUnit) continue; // its pieces are the weights' block, updated in place
      const updated = l.block((n) => this.params[first + n]!.storage);
      l.allgather(updated).forEach((values, i) => l.params[i]!.storage.set(values));
    }
  }

  /**
   * The squared norm of the gradients of the model's shard on this (tp, pp) position: the dp ranks' blocks
   * summed, and the tp ranks' for the tp-sharded parameters (the others' are the same on every tp rank).
   */
  gradNormSquared(tpSharded: ReadonlySet<Tensor>, tpGroup: Comm): number {
    const sums = new Float64Array(2); // [tp-sharded, replicated]
    let k = 0;
    for (const l of this.layouts)
      for (const { param } of l.pieces)
        sums[tpSharded.has(l.params[param]!) ? 0 : 1] += optim.gradSquaredSum([this.params[k++]!]);
    this.layouts[0]?.group.allreduce(sums, "sum");
    tpGroup.allreduce(sums.subarray(0, 1), "sum");
    return sums[0]! + sums[1]!;
  }

  /**
   * Every layout's checkpoint format: a plain AdamW over the model's parameters. "gather" fills `full` with the
   * moments of every dp rank's blocks (collective); "scatter" takes this rank's block from it.
   */
  copyMoments(full: optim.AdamW, direction: "gather" | "scatter"): optim.AdamW {
    if (direction === "gather") full.stepCount = this.stepCount;
    else this.stepCount = full.stepCount;
    const [mine, whole] = [this.stateDict().tensors, full.stateDict().tensors]; // views: written in place
    const index = new Map(full.params.map((p, j) => [p, j]));
    let k = 0;
    for (const l of this.layouts) {
      for (const moment of ["exp_avg", "exp_avg_sq"]) {
        const ofParam = (i: number) => whole[`state.${index.get(l.params[i]!)}.${moment}`]!.values();
        const own = (n: number) => mine[`state.${k + n}.${moment}`]!.values();
        if (direction === "gather") l.allgather(l.block(own)).forEach((v, i) => ofParam(i).set(v));
        else l.pieces.forEach(({ param, from, to }, n) => own(n).set(ofParam(param).subarray(from, to)));
      }
      k += l.pieces.length;
    }
    return full;
  }
}

/** Bytes of the training state this rank holds between steps: weights, gradients, AdamW moments (fp32). */
export function stateBytes(model: nn.Module, dp_model: unknown, optimizer: optim.AdamW) {
  let params = model.parameters().reduce((n, p) => n + 4 * p.storage.length, 0); // stage 3: freed, 0
  const moments = Object.values(optimizer.stateDict().tensors).reduce((n, t) => n + 4 * t.numel, 0);
  let grads = params; // a single process or step 6's buckets: each parameter's gradient whole
  if (dp_model instanceof DataParallelReduceScatter) {
    grads = dp_model.buckets.reduce((n, b) => n + 4 * (b.grad_shard ?? b.grad_data!).length, 0);
    for (const b of dp_model.buckets) if (b instanceof ShardedUnit) params += 4 * b.weight_shard.length;
  }
  return { params, grads, moments };
}
