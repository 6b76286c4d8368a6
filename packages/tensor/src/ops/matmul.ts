// Matrix products on onnxruntime's MLAS kernels: Gemm for linear layers (transposes are flags, not
// copies), MatMul for batched products.
import { kernel } from "../kernels/ort.ts";
import { Tensor, withGrad, shapeStr, numelOf } from "../tensor.ts";

function f32(t: Tensor): Float32Array {
  if (t.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${t.dtype}`);
  return t.values() as Float32Array;
}

/** C[m, n] = op(A) op(B) with op = transpose when the flag is set (ONNX Gemm). */
export function gemm(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
): Float32Array {
  const out = new Float32Array(m * n);
  const aShape = transA ? [k, m] : [m, k];
  const bShape = transB ? [n, k] : [k, n];
  kernel(`Gemm|${aShape}|${bShape}|${+transA}${+transB}`, (g) => {
    const x = g.input("a", "float32", aShape);
    const y = g.input("b", "float32", bShape);
    g.output(g.op("Gemm", [x, y], { transA: +transA, transB: +transB }), "float32", [m, n]);
  }).run(
    [
      { data: a, shape: aShape },
      { data: b, shape: bShape },
    ],
    [{ data: out, shape: [m, n] }],
  );
  return out;
}

// Output features are processed in blocks of at most BLOCK rows of W. Profiling the vocabulary
// projection ([1024, 576] x [576, 49152]) showed MLAS at 54 GFLOP/s forward and 33 GFLOP/s for dW when the
// output is one huge matrix, against 83 and 73 GFLOP/s per 4096-wide block, whose output stays in cache.
const BLOCK = 4096;

function blocks(n: number): [start: number, size: number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += BLOCK) out.push([s, Math.min(BLOCK, n - s)]);
  return out;
}

/** y = x W^T, as torch.nn.functional.linear without bias. x: [..., in], weight: [out, in]. */
export function linear(x: Tensor, weight: Tensor): Tensor {
  if (weight.ndim !== 2 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(
      `linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)} ([out, in])`,
    );
  }
  const [outF, inF] = weight.shape as [number, number];
  const m = x.numel / inF;
  const xv = f32(x);
  const wv = f32(weight);
  const parts = blocks(outF);
  const y = new Float32Array(m * outF);
  // each block of W's rows is passed as its own input: a view, no copy
  kernel(`Linear|${m}|${inF}|${outF}`, (g) => {
    const a = g.input("x", "float32", [m, inF]);
    const ys = parts.map(([, size], i) =>
      g.op("Gemm", [a, g.input(`w${i}`, "float32", [size, inF])], { transB: 1 }),
    );
    g.output(ys.length === 1 ? ys[0]! : g.op("Concat", ys, { axis: 1 }), "float32", [m, outF]);
  }).run(
    [
      { data: xv, shape: [m, inF] },
      ...parts.map(([s, size]) => ({ data: wv.subarray(s * inF, (s + size) * inF), shape: [size, inF] })),
    ],
    [{ data: y, shape: [m, outF] }],
  );
  const outShape = [...x.shape.slice(0, -1), outF];
  return withGrad(new Tensor(y, outShape), "Linear", [x, weight], (g) => {
    const dy = f32(g);
    // dx = dy W : [m, out] x [out, in]
    const dx = x.requiresGrad ? new Tensor(gemm(dy, wv, m, outF, inF, false, false), x.shape) : null;
    if (!weight.requiresGrad) return [dx, null];
    // dW = dy^T x : [out, m] x [m, in], one block of dy's columns at a time, each written into its rows of dW
    const dw = new Float32Array(outF * inF);
    kernel(`LinearWeightGrad|${m}|${inF}|${outF}`, (gr) => {
      const d = gr.input("dy", "float32", [m, outF]);
      const a = gr.input("x", "float32", [m, inF]);
      for (const [s, size] of parts) {
        const col =
          parts.length === 1
            ? d
            : gr.op("Slice", [d, gr.constInt64([s]), gr.constInt64([s + size]), gr.constInt64([1])]);
        gr.output(gr.op("Gemm", [col, a], { transA: 1 }), "float32", [size, inF]);
      }
    }).run(
      [
        { data: dy, shape: [m, outF] },
        { data: xv, shape: [m, inF] },
      ],
      parts.map(([s, size]) => ({ data: dw.subarray(s * inF, (s + size) * inF), shape: [size, inF] })),
    );
    return [dx, new Tensor(dw, weight.shape)];
  });
}

/** Batched matrix product with numpy broadcasting of the batch dims: [..., m, k] @ [..., k, n]. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim < 2 || b.ndim < 2 || a.shape[a.ndim - 1] !== b.shape[b.ndim - 2]) {
    throw new RangeError(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} do not multiply`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  if (batchB.length > 0 && (batchA.length !== batchB.length || batchA.some((d, i) => d !== batchB[i]))) {
    throw new RangeError(
      `matmul: batch dims of ${shapeStr(a.shape)} and ${shapeStr(b.shape)} must match (or b be 2-d)`,
    );
  }
  const outShape = [...batchA, a.shape[a.ndim - 2]!, b.shape[b.ndim - 1]!];
  const out = new Float32Array(numelOf(outShape));
  bmm(f32(a), a.shape, f32(b), b.shape, out, outShape, false, false);
  return withGrad(new Tensor(out, outShape), "MatMul", [a, b], (g) => {
    const dy = f32(g);
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = dY B^T
      const d = new Float32Array(a.numel);
      bmm(dy, outShape, f32(b), b.shape, d, a.shape, false, true);
      da = new Tensor(d, a.shape);
    }
    if (b.requiresGrad) {
      // dB = A^T dY, summed over the batch when b was broadcast
      const k = a.shape[a.ndim - 1]!;
      const n = outShape[outShape.length - 1]!;
      if (batchB.length === 0) {
        db = new Tensor(gemm(f32(a), dy, k, a.numel / k, n, true, false), b.shape);
      } else {
        const d = new Float32Array(b.numel);
        bmm(f32(a), a.shape, dy, outShape, d, b.shape, true, false);
        db = new Tensor(d, b.shape);
      }
    }
    return [da, db];
  });
}

/** out = op(A) @ op(B) for batched tensors (op = swap of the last two dims when the flag is set). */
function bmm(
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
  transA: boolean,
  transB: boolean,
): void {
  const perm = (nd: number) => [...Array(nd - 2).keys(), nd - 1, nd - 2];
  kernel(`BMM|${aShape}|${bShape}|${+transA}${+transB}`, (g) => {
    let x = g.input("a", "float32", aShape);
    let y = g.input("b", "float32", bShape);
    if (transA) x = g.op("Transpose", [x], { perm: perm(aShape.length) });
    if (transB) y = g.op("Transpose", [y], { perm: perm(bShape.length) });
    g.output(g.op("MatMul", [x, y]), "float32", outShape);
  }).run(
    [
      { data: a, shape: aShape },
      { data: b, shape: bShape },
    ],
    [{ data: out, shape: outShape }],
  );
}
