// Matrix products: linear layers' GEMMs on onnxruntime's MLAS or OpenBLAS, whichever measured faster for
// the shape (kernels/gemm.ts); batched products on MLAS (ONNX MatMul).
import { kernel } from "../kernels/ort.ts";
import { gemmBackendFor, gemmInto, registerOrtGemm } from "../kernels/gemm.ts";
import { Tensor, shapeStr, numelOf } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";

function f32(t: Tensor): Float32Array {
  if (t.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${t.dtype}`);
  return t.values() as Float32Array;
}

/** C[m, n] = op(A) op(B) with op = transpose when the flag is set, on the GEMM chosen for the signature. */
export function gemm(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
): Float32Array {
  const out = uninitialized(m * n);
  gemmInto(a, b, out, { m, k, n, transA, transB });
  return out;
}

// The backward of a wide linear (the vocabulary projection: [1024 tokens] x [576 -> 49152]) runs over
// blocks of 512 output features, i.e. 512 columns of dy at a time (2 MB, which stay in cache for the two
// products that use them):
//   dW_block = (x^T dy_block)^T   MLAS's transposed-A product dy^T x re-transposes dy for every 128
//                                 columns of x: 60-68 GFLOP/s, against 74-77 for the plain product and a
//                                 transpose of its [in, 512] result;
//   dx += dy_block W_block        85-90 GFLOP/s against 77-80 for the single product over all of dy.
// For the narrow outputs of the decoder layers the blocked forms measured no faster. OpenBLAS needs no
// blocking (its transposed-A product is as fast as the plain one): each of the two products runs on the
// library measured faster for it, "wide-dx" and "wide-dw" naming the blocked forms on the ORT side.
const WIDE = 8192;
const BLOCK = 512;

/** [rows, cols] -> [cols, rows], in ORT (vectorized; a graph of its own so it is not fused into a Gemm). */
function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = uninitialized(rows * cols);
  kernel((g) => {
    g.output(g.op("Transpose", [g.input("a", "float32", [rows, cols])], { perm: [1, 0] }), "float32", [
      cols,
      rows,
    ]);
  }).run([{ data: a, shape: [rows, cols] }], [{ data: out, shape: [cols, rows] }]);
  return out;
}

/** dx = dy W and dW = dy^T x over blocks of output features; each result only when asked for. */
function wideLinearBackward(
  dy: Float32Array,
  x: Float32Array | null,
  w: Float32Array | null,
  [m, inF, outF]: [number, number, number],
  dx: Float32Array | null,
  dw: Float32Array | null,
): void {
  const needDx = dx !== null;
  const needDw = dw !== null;
  const parts: [start: number, size: number][] = [];
  for (let s = 0; s < outF; s += BLOCK) parts.push([s, Math.min(BLOCK, outF - s)]);
  const rowsOf = (a: Float32Array, [s, size]: [number, number]) => a.subarray(s * inF, (s + size) * inF);
  kernel((g) => {
    const d = g.input("dy", "float32", [m, outF]);
    const xT = needDw ? g.input("xT", "float32", [inF, m]) : "";
    const ws = needDx ? parts.map(([, size], i) => g.input(`w${i}`, "float32", [size, inF])) : [];
    let acc = "";
    parts.forEach(([s, size], i) => {
      const block = g.op("Slice", [d, g.constInt64([s]), g.constInt64([s + size]), g.constInt64([1])]);
      if (needDw)
        g.output(g.op("Transpose", [g.op("Gemm", [xT, block])], { perm: [1, 0] }), "float32", [size, inF]);
      if (needDx)
        acc = acc
          ? g.op("Gemm", [block, ws[i]!, acc], { beta: { float: 1 } })
          : g.op("Gemm", [block, ws[i]!]);
    });
    if (needDx) g.output(acc, "float32", [m, inF]);
  }).run(
    [
      { data: dy, shape: [m, outF] },
      ...(needDw ? [{ data: transpose2d(x!, m, inF), shape: [inF, m] }] : []),
      // W's blocks of rows are views, no copies
      ...(needDx ? parts.map((p) => ({ data: rowsOf(w!, p), shape: [p[1], inF] })) : []),
    ],
    [
      // each block of dW is written straight into its rows
      ...(dw ? parts.map((p) => ({ data: rowsOf(dw, p), shape: [p[1], inF] })) : []),
      ...(dx ? [{ data: dx, shape: [m, inF] }] : []),
    ],
  );
}

// dx = dy W: A = dy [m, outF], B = W [outF, inF]
registerOrtGemm("wide-dx", (dy, w, dx, { m, k: outF, n: inF }) =>
  wideLinearBackward(dy, null, w, [m, inF, outF], dx, null),
);
// dW = dy^T x: A = dy [m, outF] (transposed), B = x [m, inF]
registerOrtGemm("wide-dw", (dy, x, dw, { m: outF, k: m, n: inF }) =>
  wideLinearBackward(dy, x, null, [m, inF, outF], null, dw),
);

/** Both gradients of a wide linear: one fused ORT graph when ORT runs both, else each on its backend. */
function wideBackward(
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  [m, inF, outF]: [number, number, number],
  needDx: boolean,
  needDw: boolean,
): [dx: Float32Array | null, dw: Float32Array | null] {
  const dx = needDx ? uninitialized(m * inF) : null;
  const dw = needDw ? uninitialized(outF * inF) : null;
  const dxSig = { m, k: outF, n: inF, transA: false, transB: false };
  const dwSig = { m: outF, k: m, n: inF, transA: true, transB: false };
  const dxOrt = !dx || gemmBackendFor(dxSig, "wide-dx", dy, w, dx) === "ort";
  const dwOrt = !dw || gemmBackendFor(dwSig, "wide-dw", dy, x, dw) === "ort";
  if (dxOrt && dwOrt) {
    wideLinearBackward(dy, x, w, [m, inF, outF], dx, dw);
  } else {
    if (dx) gemmInto(dy, w, dx, dxSig, "wide-dx");
    if (dw) gemmInto(dy, x, dw, dwSig, "wide-dw");
  }
  return [dx, dw];
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
  const outShape = [...x.shape.slice(0, -1), outF];
  const y = new Tensor(gemm(xv, f32(weight), m, inF, outF, false, true), outShape);
  return withGrad(y, "Linear", [x, weight], (g) => {
    const dy = f32(g);
    const wv = f32(weight); // read now, not saved: ZeRO-3 frees the weight between forward and backward
    let dx: Float32Array | null;
    let dw: Float32Array | null;
    if (outF >= WIDE) {
      [dx, dw] = wideBackward(dy, xv, wv, [m, inF, outF], x.requiresGrad, weight.requiresGrad);
    } else {
      dx = x.requiresGrad ? gemm(dy, wv, m, outF, inF, false, false) : null; // dy W: [m, out] x [out, in]
      dw = weight.requiresGrad ? gemm(dy, xv, outF, m, inF, true, false) : null; // dy^T x: [out, m] x [m, in]
    }
    return [dx && new Tensor(dx, x.shape), dw && new Tensor(dw, weight.shape)];
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
  const out = uninitialized(numelOf(outShape));
  bmm(f32(a), a.shape, f32(b), b.shape, out, outShape, false, false);
  return withGrad(new Tensor(out, outShape), "MatMul", [a, b], (g) => {
    const dy = f32(g);
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = dY B^T
      const d = uninitialized(a.numel);
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
        const d = uninitialized(b.numel);
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
  kernel((g) => {
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
