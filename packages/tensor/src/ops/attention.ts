// Causal self-attention with grouped-query attention (GQA): query head h uses KV head h / rep
// (repeat_interleave order), without repeating K/V. With the native addon beside OpenBLAS, forward and
// backward run on every thread, one (batch, KV head) group per task, computing only the causal half of
// the scores (@picotron/blas-napi's native/attention.cc: 4 and 6.5 ms a layer on 1 thread for the bench's
// [4, 256, 9 heads, 64], 1.9 and 3 on 2, against 6-9 and 10-12 for the ORT graphs). Without it, each is
// one ORT graph: the queries of one KV group are laid out as [batch, kv_heads, rep * seq, head_dim] and
// multiply that group's K/V directly; dK/dV then sum over the group for free.
import { kernel, type TypedGraph } from "../kernels/ort.ts";
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";
import { blasOrReason } from "../kernels/blas.ts";
import { getNumThreads } from "../kernels/ort.ts";

const masks = new Map<number, Float32Array>();
/** [seq, seq] additive causal mask: 0 on and below the diagonal, -inf above. */
export function causalMask(s: number): Float32Array {
  let m = masks.get(s);
  if (!m) {
    m = new Float32Array(s * s);
    for (let i = 0; i < s; i++) for (let j = i + 1; j < s; j++) m[i * s + j] = -Infinity;
    masks.set(s, m);
  }
  return m;
}

interface Dims {
  b: number;
  s: number;
  nh: number;
  nkv: number;
  d: number;
}

/** The sizes the grouped layout needs: batch, KV heads, head dim. */
export interface GroupDims {
  b: number;
  nkv: number;
  d: number;
}

/** [b, s, heads, d] -> [b, kv, rep*s, d] (queries, heads = nh) or [b, kv, s, d] (keys/values, heads = nkv). */
export function toGrouped(
  g: TypedGraph,
  x: string,
  { b, nkv, d }: GroupDims,
  s: number,
  heads: number,
): string {
  const t = g.op("Transpose", [x], { perm: [0, 2, 1, 3] }); // [b, heads, s, d]
  return heads === nkv ? t : g.op("Reshape", [t, g.constInt64([b, nkv, (heads / nkv) * s, d])]);
}
/** Inverse of toGrouped: [b, kv, rep*s, d] -> [b, s, nh, d] (queries); [b, kv, s, d] -> [b, s, kv, d]. */
export function fromGrouped(
  g: TypedGraph,
  x: string,
  { b, nkv, d }: GroupDims,
  s: number,
  heads: number,
): string {
  const t = heads === nkv ? x : g.op("Reshape", [x, g.constInt64([b, heads, s, d])]);
  return g.op("Transpose", [t], { perm: [0, 2, 1, 3] });
}

/**
 * softmax(q k^T / sqrt(d) + causal) v.
 * q: [batch, seq, heads, head_dim]; k, v: [batch, seq, kv_heads, head_dim] -> [batch, seq, heads, head_dim].
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new RangeError(`attention: expected 4-d [batch, seq, heads, head_dim], got ${shapeStr(q.shape)}`);
  }
  const [b, s, nh, d] = q.shape as [number, number, number, number];
  const nkv = k.shape[2]!;
  if (
    k.shape[0] !== b ||
    k.shape[1] !== s ||
    k.shape[3] !== d ||
    v.shape.some((x, i) => x !== k.shape[i]) ||
    nh % nkv !== 0
  ) {
    throw new RangeError(
      `attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not fit (GQA needs heads % kv_heads == 0)`,
    );
  }
  const out = uninitialized(q.numel);
  const probs = uninitialized(b * nh * s * s); // attention probabilities, saved for backward
  const qv = q.values() as Float32Array;
  const kv = k.values() as Float32Array;
  const vv = v.values() as Float32Array;
  const native = blasOrReason().blas;
  if (native) native.attentionForward(qv, kv, vv, b, s, nh, nkv, d, out, probs, getNumThreads());
  else ortAttentionForward(qv, kv, vv, { b, s, nh, nkv, d }, out, probs);
  return withGrad(new Tensor(out, q.shape), "CausalAttention", [q, k, v], (grad) => {
    const dq = uninitialized(q.numel);
    const dk = uninitialized(k.numel);
    const dv = uninitialized(v.numel);
    const dout = grad.values() as Float32Array;
    if (native) {
      native.attentionBackward(qv, kv, vv, probs, dout, b, s, nh, nkv, d, dq, dk, dv, getNumThreads());
    } else ortAttentionBackward(qv, kv, vv, probs, dout, { b, s, nh, nkv, d }, [dq, dk, dv]);
    return [new Tensor(dq, q.shape), new Tensor(dk, k.shape), new Tensor(dv, v.shape)];
  });
}

/** What both ORT graphs need: the group size, 1/sqrt(d), and the shapes of q, k/v and probs. */
function graphShapes(dims: Dims) {
  const { b, s, nh, nkv, d } = dims;
  const rep = nh / nkv;
  return {
    ...dims,
    rep,
    scale: 1 / Math.sqrt(d),
    qShape: [b, s, nh, d],
    kvShape: [b, s, nkv, d],
    pShape: [b, nkv, rep, s, s], // [b, nh, s, s] grouped by KV head
  };
}

/** The forward as one ORT graph: out and probs ([b, nkv, rep, s, s], zeros above the diagonal). */
export function ortAttentionForward(
  qv: Float32Array,
  kv: Float32Array,
  vv: Float32Array,
  dims: Dims,
  out: Float32Array,
  probs: Float32Array,
): void {
  const { b, s, nh, nkv, rep, scale, qShape, kvShape, pShape } = graphShapes(dims);
  kernel((g) => {
    const qg = toGrouped(g, g.input("q", "float32", qShape), dims, s, nh);
    const kT = g.op("Transpose", [g.input("k", "float32", kvShape)], { perm: [0, 2, 3, 1] }); // [b, kv, d, s]
    const vg = toGrouped(g, g.input("v", "float32", kvShape), dims, s, nkv);
    const mask = g.input("mask", "float32", [s, s]);
    // (q / sqrt(d)) k^T: the scale on q, [s, d] per head, rather than on the [s, s] scores (exact when
    // sqrt(d) is a power of two, as for d = 64)
    const scaleC = g.op("Constant", [], { value_float: { float: scale } });
    const scores = g.op("MatMul", [g.op("Mul", [qg, scaleC]), kT]);
    const masked = g.op("Add", [g.op("Reshape", [scores, g.constInt64(pShape)]), mask]);
    const p = g.op("Softmax", [masked], { axis: -1 });
    const o = g.op("MatMul", [g.op("Reshape", [p, g.constInt64([b, nkv, rep * s, s])]), vg]);
    g.output(fromGrouped(g, o, dims, s, nh), "float32", qShape);
    g.output(p, "float32", pShape);
  }).run(
    [
      { data: qv, shape: qShape },
      { data: kv, shape: kvShape },
      { data: vv, shape: kvShape },
      { data: causalMask(s), shape: [s, s] },
    ],
    [
      { data: out, shape: qShape },
      { data: probs, shape: pShape },
    ],
  );
}

/** The backward as one ORT graph: dq, dk, dv from the forward's inputs, its probs and dout. */
export function ortAttentionBackward(
  qv: Float32Array,
  kv: Float32Array,
  vv: Float32Array,
  probs: Float32Array,
  dout: Float32Array,
  dims: Dims,
  [dq, dk, dv]: [Float32Array, Float32Array, Float32Array],
): void {
  const { b, s, nh, nkv, rep, scale, qShape, kvShape, pShape } = graphShapes(dims);
  kernel((g) => {
    const qg = toGrouped(g, g.input("q", "float32", qShape), dims, s, nh); // [b, kv, rep*s, d]
    const kg = toGrouped(g, g.input("k", "float32", kvShape), dims, s, nkv); // [b, kv, s, d]
    const vg = toGrouped(g, g.input("v", "float32", kvShape), dims, s, nkv);
    const p = g.op("Reshape", [g.input("p", "float32", pShape), g.constInt64([b, nkv, rep * s, s])]);
    const dO = toGrouped(g, g.input("dout", "float32", qShape), dims, s, nh);
    const t = (x: string) => g.op("Transpose", [x], { perm: [0, 1, 3, 2] });
    // dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dP * P));  dQ = dS (K / sqrt(d));
    // dK = dS^T (Q / sqrt(d))   (the scale on K and Q, [s, d], rather than on the [s, s] dS)
    const dV = g.op("MatMul", [t(p), dO]);
    const dP = g.op("MatMul", [dO, t(vg)]);
    const rowDot = g.op("ReduceSum", [g.op("Mul", [dP, p]), g.constInt64([-1])], { keepdims: 1 });
    const scaleC = g.op("Constant", [], { value_float: { float: scale } });
    const dS = g.op("Mul", [p, g.op("Sub", [dP, rowDot])]);
    const back = (x: string) => g.op("Transpose", [x], { perm: [0, 2, 1, 3] }); // [b, kv, s, d] -> [b, s, kv, d]
    const dQ = g.op("MatMul", [dS, g.op("Mul", [kg, scaleC])]);
    g.output(fromGrouped(g, dQ, dims, s, nh), "float32", qShape);
    g.output(back(g.op("MatMul", [t(dS), g.op("Mul", [qg, scaleC])])), "float32", kvShape);
    g.output(back(dV), "float32", kvShape);
  }).run(
    [
      { data: qv, shape: qShape },
      { data: kv, shape: kvShape },
      { data: vv, shape: kvShape },
      { data: probs, shape: pShape },
      { data: dout, shape: qShape },
    ],
    [
      { data: dq, shape: qShape },
      { data: dk, shape: kvShape },
      { data: dv, shape: kvShape },
    ],
  );
}
