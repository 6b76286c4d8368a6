// AdamW with PyTorch's semantics: decoupled weight decay, bias-corrected moments.
//   p <- p * (1 - lr * wd)
//   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
import { Tensor } from "../tensor.ts";
import { timed } from "../profiler.ts";
import { adamwSlot, type AdamWSlot } from "./adamw_update.ts";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of steps taken (t in the bias corrections). */
  stepCount = 0;
  /** Each parameter's moments and update kernel. */
  private readonly slots: AdamWSlot[];

  constructor(
    readonly params: Tensor[],
    { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 }: AdamWOptions = {},
  ) {
    if (!(lr >= 0)) throw new RangeError(`AdamW: invalid learning rate ${lr}`);
    if (!(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1)) {
      throw new RangeError(`AdamW: betas must be in [0, 1), got [${betas}]`);
    }
    if (!(eps >= 0) || !(weightDecay >= 0)) throw new RangeError("AdamW: eps and weight decay must be >= 0");
    this.lr = lr;
    this.betas = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.slots = params.map((p) => adamwSlot(p.numel));
  }

  /**
   * Clears gradients. Like PyTorch's zero_grad(set_to_none=True) by default: the next backward adopts its
   * fresh gradient buffers instead of adding into zeros. setToNone=false zeroes in place (for gradients
   * that live in buffers someone else owns, like data parallelism's buckets).
   */
  zeroGrad(setToNone = true): void {
    for (const p of this.params) {
      if (setToNone) p.grad = null;
      else if (p.grad) (p.grad.values() as Float32Array).fill(0);
    }
  }

  step(): void {
    timed("AdamW.step", () => this.update());
  }

  private update(): void {
    this.stepCount++;
    const [b1, b2] = this.betas;
    const t = this.stepCount;
    const scalars = {
      b1,
      b2,
      stepSize: this.lr / (1 - b1 ** t),
      bc2Sqrt: Math.sqrt(1 - b2 ** t),
      decay: 1 - this.lr * this.weightDecay,
      eps: this.eps,
    };
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const w = p.storage as Float32Array;
      this.slots[i]!.update(w, p.grad.values() as Float32Array, scalars);
    });
  }

  /** Moments as tensors named `state.{i}.exp_avg` / `.exp_avg_sq`, plus the step count. */
  stateDict(): { step: number; tensors: Record<string, Tensor> } {
    const tensors: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      tensors[`state.${i}.exp_avg`] = new Tensor(this.slots[i]!.expAvg, p.shape);
      tensors[`state.${i}.exp_avg_sq`] = new Tensor(this.slots[i]!.expAvgSq, p.shape);
    });
    return { step: this.stepCount, tensors };
  }

  loadStateDict({ step, tensors }: { step: number; tensors: Record<string, Tensor> }): void {
    const expected = 2 * this.params.length;
    if (Object.keys(tensors).length !== expected) {
      throw new Error(
        `AdamW.loadStateDict: ${Object.keys(tensors).length} state tensors for ${this.params.length} parameters (expected ${expected})`,
      );
    }
    this.params.forEach((p, i) => {
      for (const [key, dst] of [
        ["exp_avg", this.slots[i]!.expAvg],
        ["exp_avg_sq", this.slots[i]!.expAvgSq],
      ] as const) {
        const t = tensors[`state.${i}.${key}`];
        if (!t || t.numel !== p.numel) {
          throw new Error(
            `AdamW.loadStateDict: state.${i}.${key} is missing or does not match parameter ${i} (${p.numel} elements)`,
          );
        }
        dst.set(t.values() as Float32Array);
      }
    });
    this.stepCount = step;
  }
}
