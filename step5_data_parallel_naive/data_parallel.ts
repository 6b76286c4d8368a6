// Naive data parallelism (the tutorial's data_parallel.py, step 5): every dp rank holds a full replica of
// the model and trains on its own share of the global batch; before the optimizer step, each parameter's
// gradient is averaged over the dp group, so every replica takes the same step as the 1-rank run would
// on the whole global batch, and the replicas stay identical.
//
// "Naive": one blocking all-reduce per parameter, fired from a gradient hook during the backward pass.
// Many small messages, and the backward pass stops for each one (step 6 packs them into buckets and
// overlaps the communication with the backward pass).
import type { Comm } from "@picotron/mpi-napi";
import type { nn, Tensor } from "@picotron/tensor";

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
