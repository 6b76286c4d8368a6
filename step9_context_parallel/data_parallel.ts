// Data parallelism (the tutorial's data_parallel.py): every dp rank holds a full replica of the model and
// trains on its own share of the global batch; before the optimizer step, each parameter's gradient is
// averaged over the dp group, so every replica takes the same step as the 1-rank run would on the whole
// global batch, and the replicas stay identical.
//
// DataParallelNaive (step 5): one blocking all-reduce per parameter, fired from a gradient hook during the
// backward pass: many small messages, and the backward pass stops for each one. dp.bench.ts compares it with
// DataParallelBucket (step 6), as torch's DistributedDataParallel: the gradients live in flat buckets
// (bucket.ts); a bucket's all-reduce starts in the background the moment its last gradient is ready and
// proceeds while the backward pass computes the earlier layers' gradients; after the backward pass, one
// wait collects whatever is still in flight.

import type { Comm } from "@picotron/mpi-napi";
import type { nn, Tensor } from "@picotron/tensor";
import { BucketManager, bucketSizeFromCap } from "./bucket.ts";

export class DataParallelNaive<M extends nn.Module & { forward(input: Tensor): Tensor }> {
  /**
   * Whether this backward pass averages the gradients. With gradient accumulation the loop sets it to true
   * for the last micro-batch only: the earlier ones just accumulate locally, and one all-reduce per
   * parameter per optimizer step suffices.
   */
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
        if (this.require_backward_grad_sync) this.allReduceGrad(param);
      });
    }
  }

  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  private allReduceGrad(param: Tensor): void {
    // The leaf's .grad is contiguous (the engine accumulates into it), so values() is a view of it:
    // MPI averages it in place.
    this.dpGroup.allreduce(param.grad!.values() as Float32Array, "avg");
  }
}

export class DataParallelBucket<M extends nn.Module & { forward(input: Tensor): Tensor }> {
  /**
   * Whether this backward pass averages the gradients. With gradient accumulation the loop sets it to true
   * for the last micro-batch only: the earlier ones just accumulate into the buckets.
   */
  require_backward_grad_sync = true;
  readonly bucketManager: BucketManager;

  constructor(
    readonly module: M,
    readonly dpGroup: Comm,
    bucketCapMb = 25,
  ) {
    // The backward pass produces the gradients roughly in the reverse order of the parameters' registration
    // (last layer first): buckets in that order fill up, and start their all-reduce, one after another.
    const params = module.parameters().reverse();
    this.bucketManager = new BucketManager(params, dpGroup, bucketSizeFromCap(bucketCapMb));
    for (const p of params) {
      // Fires once the backward pass has added this backward's gradient into p.grad, a view of the bucket.
      p.registerPostAccumulateGradHook((param) => this.onGradAccumulated(param));
    }
  }

  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  private onGradAccumulated(param: Tensor): void {
    if (!this.bucketManager.holds(param)) {
      throw new Error(
        "a parameter's .grad is no longer a view of its gradient bucket: clear gradients with " +
          "optimizer.zeroGrad(false), which zeroes them in place, not zeroGrad() (which drops them)",
      );
    }
    if (this.require_backward_grad_sync) this.bucketManager.markParamAsReady(param);
    // The hooks fire between the backward pass's ops: the only moments the in-flight all-reduces can move on.
    this.bucketManager.progress();
  }

  /**
   * Waits for every bucket's all-reduce: call it after the last (synchronized) backward pass of the step,
   * before clipping and the optimizer step. (The tutorial queues it as an autograd callback at the end of
   * the backward pass; our engine has no such callback, so the training loop calls it.)
   */
  finishGradientSynchronization(): void {
    this.bucketManager.waitAll();
  }
}
