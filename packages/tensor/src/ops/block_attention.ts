// Attention of queries over one block of keys, the kernel of ring attention (context parallelism). A rank
// sees its keys block by block, so the forward also returns each query's log-sum-exp over the block,
//   s_ij = q_i . k_j / sqrt(d)   (-inf where the causal mask hides key j from query i)
//   lse_i = log sum_j exp(s_ij),   out_i = sum_j exp(s_ij - lse_i) v_j,
// which is what merging the partial results of several blocks exactly needs. The backward stores no
// probabilities: it recomputes them from the merged (final) lse and output of the whole row,
//   P = exp(S - lse);  D_i = dO_i . O_i  (= sum_j P_ij dP_ij over all blocks of the row)
//   dV = P^T dO;  dP = dO V^T;  dS = P * (dP - D) / sqrt(d);  dQ = dS K;  dK = dS^T Q,
// so summing these over the blocks gives exactly the gradients of attention over the whole row.
//
// GQA as in attention.ts: query head h uses KV head h / rep, the queries of one KV group laid out as
// [batch, kv_heads, rep * seq_q, head_dim] so that they multiply that group's K/V directly.
import { kernel, type TypedGraph } from "../kernels/ort.ts";
import { Tensor, shapeStr } from "../tensor.ts";
// the diagonal block's mask is the causal one; the grouped (GQA) layout is causal attention's
import { causalMask, fromGrouped, toGrouped } from "./attention.ts";
import { uninitialized } from "./alloc.ts"; // every element is an output of the kernel

export interface BlockAttentionOutput {
  out: Tensor; // [batch, seq_q, heads, head_dim]
  lse: Tensor; // [batch, heads, seq_q]
}

export interface BlockAttentionGrads {
  dq: Tensor; // [batch, seq_q, heads, head_dim]
  dk: Tensor; // [batch, seq_k, kv_heads, head_dim]
  dv: Tensor; // [batch, seq_k, kv_heads, head_dim]
}

interface Dims {
  b: number;
  sq: number;
  sk: number;
  nh: number;
  nkv: number;
  d: number;
}

function checkDims(q: Tensor, k: Tensor, v: Tensor, causal: boolean): Dims {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new RangeError(
      `block attention: expected 4-d [batch, seq, heads, head_dim], got q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`,
    );
  }
  const [b, sq, nh, d] = q.shape as [number, number, number, number];
  const [, sk, nkv] = k.shape as [number, number, number, number];
  if (k.shape[0] !== b || k.shape[3] !== d || v.shape.some((x, i) => x !== k.shape[i]) || nh % nkv !== 0) {
    throw new RangeError(
      `block attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not fit (GQA needs heads % kv_heads == 0)`,
    );
  }
  if (causal && sq !== sk) {
    throw new RangeError(
      `block attention: a causal (diagonal) block needs as many queries as keys, got ${sq} and ${sk}`,
    );
  }
  return { b, sq, sk, nh, nkv, d };
}

/** Scaled scores q k^T / sqrt(d) in the grouped layout [b, kv, rep*sq, sk], masked on a diagonal block. */
function scores(g: TypedGraph, qg: string, kg: string, dm: Dims, causal: boolean): string {
  const kT = g.op("Transpose", [kg], { perm: [0, 1, 3, 2] }); // [b, kv, d, sk]
  const scale = g.op("Constant", [], { value_float: { float: 1 / Math.sqrt(dm.d) } });
  const s = g.op("Mul", [g.op("MatMul", [qg, kT]), scale]);
  if (!causal) return s;
  const rep = dm.nh / dm.nkv;
  const mask = g.input("mask", "float32", [dm.sq, dm.sk]);
  const masked = g.op("Add", [g.op("Reshape", [s, g.constInt64([dm.b, dm.nkv, rep, dm.sq, dm.sk])]), mask]);
  return g.op("Reshape", [masked, g.constInt64([dm.b, dm.nkv, rep * dm.sq, dm.sk])]);
}

/**
 * Attention of q over one block of keys/values, and each query's log-sum-exp over the block.
 * causal: the diagonal block (query i sees keys 0..i); otherwise every query sees every key.
 * q: [batch, seq_q, heads, head_dim]; k, v: [batch, seq_k, kv_heads, head_dim].
 */
export function blockAttentionForward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  causal: boolean,
): BlockAttentionOutput {
  const dm = checkDims(q, k, v, causal);
  const { b, sq, sk, nh, nkv, d } = dm;
  const qShape = [b, sq, nh, d];
  const kvShape = [b, sk, nkv, d];
  const lseShape = [b, nh, sq];
  const out = uninitialized(q.numel);
  const lse = uninitialized(b * nh * sq);
  const inputs = [
    { data: q.values() as Float32Array, shape: qShape },
    { data: k.values() as Float32Array, shape: kvShape },
    { data: v.values() as Float32Array, shape: kvShape },
  ];
  if (causal) inputs.push({ data: causalMask(sq), shape: [sq, sk] });
  kernel((g) => {
    const qg = toGrouped(g, g.input("q", "float32", qShape), dm, sq, nh);
    const kg = toGrouped(g, g.input("k", "float32", kvShape), dm, sk, nkv);
    const vg = toGrouped(g, g.input("v", "float32", kvShape), dm, sk, nkv);
    const s = scores(g, qg, kg, dm, causal); // [b, kv, rep*sq, sk]
    // lse = max + log(sum(exp(s - max))): stable for any magnitude of the scores
    const max = g.op("ReduceMax", [s], { axes: [-1], keepdims: 1 });
    const e = g.op("Exp", [g.op("Sub", [s, max])]);
    const sum = g.op("ReduceSum", [e, g.constInt64([-1])], { keepdims: 1 });
    const o = g.op("MatMul", [g.op("Div", [e, sum]), vg]);
    g.output(fromGrouped(g, o, dm, sq, nh), "float32", qShape);
    const l = g.op("Add", [max, g.op("Log", [sum])]); // [b, kv, rep*sq, 1]
    g.output(g.op("Reshape", [l, g.constInt64(lseShape)]), "float32", lseShape);
  }).run(inputs, [
    { data: out, shape: qShape },
    { data: lse, shape: lseShape },
  ]);
  return { out: new Tensor(out, qShape), lse: new Tensor(lse, lseShape) };
}

/**
 * The block's share of the gradients of attention, given the gradient dout of the row's final output
 * `out` and the row's final log-sum-exp `lse` (over all blocks).
 * dout, out: [batch, seq_q, heads, head_dim]; lse: [batch, heads, seq_q]; k, v: one block's keys/values.
 */
export function blockAttentionBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  causal: boolean,
): BlockAttentionGrads {
  const dm = checkDims(q, k, v, causal);
  const { b, sq, sk, nh, nkv, d } = dm;
  const qShape = [b, sq, nh, d];
  const kvShape = [b, sk, nkv, d];
  const lseShape = [b, nh, sq];
  for (const [name, t, shape] of [
    ["dout", dout, qShape],
    ["out", out, qShape],
    ["lse", lse, lseShape],
  ] as const) {
    if (t.shape.length !== shape.length || t.shape.some((x, i) => x !== shape[i])) {
      throw new RangeError(
        `block attention backward: ${name} is ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`,
      );
    }
  }
  const dq = uninitialized(q.numel);
  const dk = uninitialized(k.numel);
  const dv = uninitialized(v.numel);
  const inputs = [
    { data: q.values() as Float32Array, shape: qShape },
    { data: k.values() as Float32Array, shape: kvShape },
    { data: v.values() as Float32Array, shape: kvShape },
    { data: out.values() as Float32Array, shape: qShape },
    { data: dout.values() as Float32Array, shape: qShape },
    { data: lse.values() as Float32Array, shape: lseShape },
  ];
  if (causal) inputs.push({ data: causalMask(sq), shape: [sq, sk] });
  kernel((g) => {
    const qg = toGrouped(g, g.input("q", "float32", qShape), dm, sq, nh); // [b, kv, rep*sq, d]
    const kg = toGrouped(g, g.input("k", "float32", kvShape), dm, sk, nkv); // [b, kv, sk, d]
    const vg = toGrouped(g, g.input("v", "float32", kvShape), dm, sk, nkv);
    const og = toGrouped(g, g.input("out", "float32", qShape), dm, sq, nh);
    const dO = toGrouped(g, g.input("dout", "float32", qShape), dm, sq, nh);
    const rep = nh / nkv;
    const l = g.op("Reshape", [g.input("lse", "float32", lseShape), g.constInt64([b, nkv, rep * sq, 1])]);
    const s = scores(g, qg, kg, dm, causal); // masked scores are -inf, so their P is exactly 0
    const p = g.op("Exp", [g.op("Sub", [s, l])]); // [b, kv, rep*sq, sk]
    const t = (x: string) => g.op("Transpose", [x], { perm: [0, 1, 3, 2] });
    const rowDot = g.op("ReduceSum", [g.op("Mul", [dO, og]), g.constInt64([-1])], { keepdims: 1 }); // D
    const dP = g.op("MatMul", [dO, t(vg)]);
    const scale = g.op("Constant", [], { value_float: { float: 1 / Math.sqrt(d) } });
    const dS = g.op("Mul", [g.op("Mul", [p, g.op("Sub", [dP, rowDot])]), scale]);
    g.output(fromGrouped(g, g.op("MatMul", [dS, kg]), dm, sq, nh), "float32", qShape);
    g.output(fromGrouped(g, g.op("MatMul", [t(dS), qg]), dm, sk, nkv), "float32", kvShape);
    g.output(fromGrouped(g, g.op("MatMul", [t(p), dO]), dm, sk, nkv), "float32", kvShape);
  }).run(inputs, [
    { data: dq, shape: qShape },
    { data: dk, shape: kvShape },
    { data: dv, shape: kvShape },
  ]);
  return { dq: new Tensor(dq, qShape), dk: new Tensor(dk, kvShape), dv: new Tensor(dv, kvShape) };
}
