// Gradient clipping by global L2 norm (torch.nn.utils.clip_grad_norm_).
import type { Tensor } from "../tensor.ts";

/** Sum of squares of all gradients (distributed callers all-reduce this before the sqrt). */
export function gradSquaredSum(params: readonly Tensor[]): number {
  let ss = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.values();
    for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  }
  return ss;
}

/** Scales all gradients so their global norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(
  params: readonly Tensor[],
  maxNorm: number,
  totalNorm = Math.sqrt(gradSquaredSum(params)),
): number {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const coef = maxNorm / (totalNorm + 1e-6);
  if (coef < 1) {
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.values() as Float32Array;
      for (let i = 0; i < g.length; i++) g[i] *= coef;
    }
  }
  return totalNorm;
}
