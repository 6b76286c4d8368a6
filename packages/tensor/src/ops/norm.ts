// RMSNorm, fused: y = w * x / sqrt(mean(x^2) + eps) over the last dim. One TS pass per row computes the
// statistic (in float64) and the output; unfused in ORT it would take five kernels and their temporaries.
import { Tensor, withGrad, shapeStr } from "../tensor.ts";

export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const h = x.shape[x.ndim - 1]!;
  if (weight.ndim !== 1 || weight.shape[0] !== h) {
    throw new RangeError(
      `rmsNorm: weight ${shapeStr(weight.shape)} does not match input ${shapeStr(x.shape)}`,
    );
  }
  const xv = x.values() as Float32Array;
  const w = weight.values() as Float32Array;
  const rows = xv.length / h;
  const out = new Float32Array(xv.length);
  const rstd = new Float64Array(rows); // 1 / sqrt(mean(x^2) + eps), saved for backward
  for (let r = 0; r < rows; r++) {
    const o = r * h;
    let ss = 0;
    for (let j = 0; j < h; j++) ss += xv[o + j]! * xv[o + j]!;
    const inv = 1 / Math.sqrt(ss / h + eps);
    rstd[r] = inv;
    for (let j = 0; j < h; j++) out[o + j] = w[j]! * xv[o + j]! * inv;
  }
  return withGrad(new Tensor(out, x.shape), "RMSNorm", [x, weight], (g) => {
    // xhat = x * rstd;  dw = sum_rows dy * xhat;  dx = rstd * (w*dy - xhat * mean_j(w*dy*xhat))
    const dy = g.values() as Float32Array;
    const dx = new Float32Array(xv.length);
    const dw = new Float64Array(h);
    for (let r = 0; r < rows; r++) {
      const o = r * h;
      const inv = rstd[r]!;
      let dot = 0;
      for (let j = 0; j < h; j++) {
        const xhat = xv[o + j]! * inv;
        dw[j] += dy[o + j]! * xhat;
        dot += w[j]! * dy[o + j]! * xhat;
      }
      const c = dot / h;
      for (let j = 0; j < h; j++) dx[o + j] = inv * (w[j]! * dy[o + j]! - xv[o + j]! * inv * c);
    }
    return [new Tensor(dx, x.shape), new Tensor(Float32Array.from(dw), weight.shape)];
  });
}
