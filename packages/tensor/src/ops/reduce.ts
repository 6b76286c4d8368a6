// Reductions to a scalar.
import { Tensor, withGrad, full } from "../tensor.ts";

export function sum(a: Tensor): Tensor {
  const x = a.values();
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return withGrad(new Tensor(new Float32Array([s]), []), "Sum", [a], (g) => [full(a.shape, g.item())]);
}

export function mean(a: Tensor): Tensor {
  const n = a.numel;
  const x = a.values();
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return withGrad(new Tensor(new Float32Array([s / n]), []), "Mean", [a], (g) => [
    full(a.shape, g.item() / n),
  ]);
}
