// Cross-entropy over logits [N, vocab] with integer targets [N] (mean over targets != ignoreIndex).
// The gradient is softmax minus the one-hot target, over the count: the forward pass computes it
// right away (as fused CE kernels do), so the backward of a plain loss.backward() has nothing left to do.
// With the native addon beside OpenBLAS, one pass per row on every thread computes both, the loss as
// log-sum-exp (float64) minus the target's logit (@picotron/blas-napi's native/cross_entropy.cc: 31 ms a
// step on 1 thread and 16 on 2 for the bench's [1024, 49152], against 41-44 for the ORT pass below).
// Without it, one ORT pass computes P / count (one exp per logit: measured 3x faster than LogSoftmax then
// Exp) and the loss comes from the target's probability, p_t = exp(x_t - lse):   loss_i = -log(p_t)
// (float32's p_t carries a relative error of ~1e-7, an absolute one of ~1e-7 on the loss). Only where p_t
// underflows (a loss above ~70) is the row's log-sum-exp summed again, in float64.
import { kernel } from "../kernels/ort.ts";
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";
import { binaryArrays } from "./elementwise.ts";
import { blasOrReason, type Blas } from "../kernels/blas.ts";
import { getNumThreads } from "../kernels/ort.ts";

export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  if (logits.ndim !== 2 || targets.ndim !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new RangeError(
      `crossEntropy: logits ${shapeStr(logits.shape)} and targets ${shapeStr(targets.shape)}: expected [N, vocab] and [N]`,
    );
  }
  if (targets.dtype !== "int32")
    throw new TypeError(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  const [n, vocab] = logits.shape as [number, number];
  const t = targets.values() as Int32Array;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const y = t[i]!;
    if (y === ignoreIndex) continue;
    if (y < 0 || y >= vocab) throw new RangeError(`crossEntropy: target ${y} is outside [0, ${vocab})`);
    count++;
  }
  const x = logits.values() as Float32Array;
  const scale = count > 0 ? 1 / count : 1; // with every target ignored, all rows are zeroed below
  const grad = uninitialized(n * vocab);
  const native = n > 0 && vocab > 0 ? blasOrReason().blas : null;
  const total = native
    ? nativeLoss(native, x, t, ignoreIndex, scale, grad)
    : ortLoss(x, t, [n, vocab], ignoreIndex, scale, grad);
  const loss = count > 0 ? total / count : NaN; // like PyTorch: all targets ignored gives NaN
  return withGrad(new Tensor(new Float32Array([loss]), []), "CrossEntropy", [logits], (g) => {
    // d loss / d logits = (softmax - onehot) / count, times the incoming scalar gradient
    const s = g.item();
    return [new Tensor(s === 1 ? grad : binaryArrays("Mul", grad, s), logits.shape)];
  });
}

/** The sum of the rows' losses, and their gradient into grad, in the native addon. */
export function nativeLoss(
  native: Blas,
  x: Float32Array,
  t: Int32Array,
  ignoreIndex: number,
  scale: number,
  grad: Float32Array,
): number {
  const losses = new Float64Array(t.length);
  native.crossEntropy(x, t, ignoreIndex, scale, grad, losses, getNumThreads());
  let total = 0;
  for (const l of losses) total += l; // in row order, whatever the thread count
  return total;
}

/** The same in one ORT pass and a loop over the rows. */
export function ortLoss(
  x: Float32Array,
  t: Int32Array,
  [n, vocab]: [number, number],
  ignoreIndex: number,
  scale: number,
  grad: Float32Array,
): number {
  kernel((g) => {
    const l = g.input("logits", "float32", [n, vocab]);
    const p = g.op("Mul", [g.op("Softmax", [l], { axis: -1 }), g.input("scale", "float32", [])]);
    g.output(p, "float32", [n, vocab]);
  }).run(
    [
      { data: x, shape: [n, vocab] },
      { data: new Float32Array([scale]), shape: [] },
    ],
    [{ data: grad, shape: [n, vocab] }],
  );
  let total = 0;
  for (let i = 0; i < n; i++) {
    const y = t[i]!;
    if (y === ignoreIndex) {
      grad.fill(0, i * vocab, (i + 1) * vocab);
      continue;
    }
    const p = grad[i * vocab + y]! / scale;
    total += p > 1e-30 ? -Math.log(p) : logSumExp(x.subarray(i * vocab, (i + 1) * vocab)) - x[i * vocab + y]!;
    grad[i * vocab + y] -= scale;
  }
  return total;
}

/** log(sum_j exp(x_j)) in float64, shifted by the max so that nothing overflows. */
function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  return max + Math.log(sum);
}
