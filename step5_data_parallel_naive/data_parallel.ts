// Naive data parallelism (the tutorial's data_parallel.py): every dp rank holds a replica of the model and
// trains on its share of the global batch; each parameter's gradient is averaged over the dp group, so every
// replica takes the 1-rank run's step. "Naive": one blocking all-reduce per parameter, from a gradient hook
// during the backward pass (step 6 packs them into buckets that overlap the rest of the backward pass).
import type { Comm } from "@picotron/mpi-napi";
import type { nn, Tensor } from "@picotron/tensor";

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
