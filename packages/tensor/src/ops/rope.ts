// Rotary position embedding, non-interleaved ("rotate half"): x*cos + cat(-x2, x1)*sin,
// with cos/sin of [seq, head_dim] (each half repeated) already cut to the tokens' positions.
// On every thread in the native addon beside OpenBLAS when it is built (the same float64 arithmetic as the
// loop below, so the same bits; 14 -> 2 ms per bench step on 1 thread), else the TypeScript loop.
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { blasOrReason } from "../kernels/blas.ts";
import { getNumThreads } from "../kernels/ort.ts";
import { uninitialized } from "./alloc.ts";

/** x: [batch, seq, heads, head_dim]; cos, sin: [seq, head_dim]. */
export function applyRotaryEmb(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  if (x.ndim !== 4)
    throw new RangeError(`rope: expected [batch, seq, heads, head_dim], got ${shapeStr(x.shape)}`);
  const [, s, nh, d] = x.shape as [number, number, number, number];
  if (cos.shape[0] !== s || cos.shape[1] !== d || sin.shape[0] !== s || sin.shape[1] !== d) {
    throw new RangeError(`rope: cos/sin ${shapeStr(cos.shape)} do not match [seq=${s}, head_dim=${d}]`);
  }
  const c = cos.values() as Float32Array;
  const sn = sin.values() as Float32Array;
  const rotate = (src: Float32Array, sign: 1 | -1): Float32Array => {
    const out = uninitialized(src.length);
    const native = blasOrReason().blas;
    if (native) native.rope(src, c, sn, sign, s, nh, d, out, getNumThreads());
    else rotateHalves(src, c, sn, sign, s, nh, d, out);
    return out;
  };
  const out = rotate(x.values() as Float32Array, 1);
  return withGrad(new Tensor(out, x.shape), "RoPE", [x], (g) => [
    new Tensor(rotate(g.values() as Float32Array, -1), x.shape),
  ]);
}

/**
 * out = x*cos + sign * cat(-x2, x1)*sin for x: [batch, seq, heads, d]; sign 1 is the rotation, -1 its
 * transpose (the backward). A top-level loop: V8 optimizes it once, not per closure.
 */
function rotateHalves(
  src: Float32Array,
  c: Float32Array,
  sn: Float32Array,
  sign: number,
  s: number,
  nh: number,
  d: number,
  out: Float32Array,
): void {
  const half = d / 2;
  const rows = src.length / d; // (batch, seq, head) triples
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    const cs = (Math.floor(r / nh) % s) * d; // this row's position
    for (let j = 0; j < half; j++) {
      const x1 = src[o + j]!;
      const x2 = src[o + j + half]!;
      out[o + j] = x1 * c[cs + j]! - sign * x2 * sn[cs + j]!;
      out[o + j + half] = x2 * c[cs + j + half]! + sign * x1 * sn[cs + j + half]!;
    }
  }
}
