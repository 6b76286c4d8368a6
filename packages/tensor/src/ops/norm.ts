// RMSNorm, fused: y = w * x / sqrt(mean(x^2) + eps) over the last dim. One pass per row computes the
// statistic (in float64) and the output; unfused in ORT it would take five kernels and their temporaries.
// Rows whose width is a multiple of 4 run on every thread in the native addon beside OpenBLAS when it is
// built (@picotron/blas-napi's native/rmsnorm.cc), else in WebAssembly SIMD (kernels/wasm_rmsnorm.ts: 4-6x
// faster than the TS loops below, which handle the other widths); those two give the same bits.
// The loops live in top-level functions: V8 optimizes them once with stable types, where the same loops
// inside the op's closures ran 2-3x slower in a training step (measured).
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";
import { rmsNormBackwardWasm, rmsNormForwardWasm, wasmRmsNormFits } from "../kernels/wasm_rmsnorm.ts";
import { blasOrReason } from "../kernels/blas.ts";
import { getNumThreads } from "../kernels/ort.ts";

export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const h = x.shape[x.ndim - 1]!;
  if (weight.ndim !== 1 || weight.shape[0] !== h) {
    throw new RangeError(
      `rmsNorm: weight ${shapeStr(weight.shape)} does not match input ${shapeStr(x.shape)}`,
    );
  }
  const xv = x.values() as Float32Array;
  const out = uninitialized(xv.length);
  const rstd = new Float64Array(xv.length / h); // 1 / sqrt(mean(x^2) + eps) per row, saved for backward
  const simd = wasmRmsNormFits(h);
  const native = simd ? blasOrReason().blas : null;
  const wv = weight.values() as Float32Array;
  if (native) native.rmsnormForward(xv, wv, eps, out, rstd, getNumThreads());
  else (simd ? rmsNormForwardWasm : normForward)(xv, wv, eps, out, rstd);
  return withGrad(new Tensor(out, x.shape), "RMSNorm", [x, weight], (g) => {
    const w = weight.values() as Float32Array; // read now, not saved (ZeRO-3 frees weights until backward)
    const dx = uninitialized(xv.length);
    const dw = new Float64Array(h);
    const dy = g.values() as Float32Array;
    if (native) native.rmsnormBackward(xv, w, rstd, dy, dx, dw, getNumThreads());
    else (simd ? rmsNormBackwardWasm : normBackward)(xv, w, rstd, dy, dx, dw);
    return [new Tensor(dx, x.shape), new Tensor(Float32Array.from(dw), weight.shape)];
  });
}

function normForward(
  x: Float32Array,
  w: Float32Array,
  eps: number,
  out: Float32Array,
  rstd: Float64Array,
): void {
  const h = w.length;
  for (let r = 0; r < rstd.length; r++) {
    const o = r * h;
    let ss = 0;
    for (let j = 0; j < h; j++) ss += x[o + j]! * x[o + j]!;
    const inv = 1 / Math.sqrt(ss / h + eps);
    rstd[r] = inv;
    for (let j = 0; j < h; j++) out[o + j] = w[j]! * x[o + j]! * inv;
  }
}

/** xhat = x * rstd;  dw += sum_rows dy * xhat;  dx = rstd * (w*dy - xhat * mean_j(w*dy*xhat)). */
function normBackward(
  x: Float32Array,
  w: Float32Array,
  rstd: Float64Array,
  dy: Float32Array,
  dx: Float32Array,
  dw: Float64Array,
): void {
  const h = w.length;
  for (let r = 0; r < rstd.length; r++) {
    const o = r * h;
    const inv = rstd[r]!;
    let dot = 0;
    for (let j = 0; j < h; j++) {
      const xhat = x[o + j]! * inv;
      dw[j] += dy[o + j]! * xhat;
      dot += w[j]! * dy[o + j]! * xhat;
    }
    const c = dot / h;
    for (let j = 0; j < h; j++) dx[o + j] = inv * (w[j]! * dy[o + j]! - x[o + j]! * inv * c);
  }
}
