// Reductions to a scalar, in ORT (its vectorized ReduceSum measured ~8x faster than a TS loop; see
// kernels.bench.ts).
import { kernel } from "../kernels/ort.ts";
import { Tensor, full } from "../tensor.ts";
import { withGrad } from "../autograd.ts";

function reduceAll(a: Tensor): number {
  if (a.dtype !== "float32") throw new TypeError(`sum/mean: expected a float32 tensor, got ${a.dtype}`);
  const n = a.numel;
  const out = new Float32Array(1);
  kernel((g) => {
    g.output(
      g.op("ReduceSum", [g.input("x", "float32", [n]), g.constInt64([0])], { keepdims: 0 }),
      "float32",
      [],
    );
  }).run([{ data: a.values() as Float32Array, shape: [n] }], [{ data: out, shape: [] }]);
  return out[0]!;
}

export function sum(a: Tensor): Tensor {
  return withGrad(new Tensor(new Float32Array([reduceAll(a)]), []), "Sum", [a], (g) => [
    full(a.shape, g.item()),
  ]);
}

export function mean(a: Tensor): Tensor {
  const n = a.numel;
  return withGrad(new Tensor(new Float32Array([reduceAll(a) / n]), []), "Mean", [a], (g) => [
    full(a.shape, g.item() / n),
  ]);
}
