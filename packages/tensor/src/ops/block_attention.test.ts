import { describe, expect, it } from "vitest";
import { F, Generator, Tensor, defineFunction, gradcheck, noGrad } from "../index.ts";

const gen = new Generator(11, "block-attention-test");
function rand(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float32Array.from({ length: n }, () => (gen.random() * 2 - 1) * scale),
    shape,
  );
}
function maxDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const x = a.values();
  const y = b.values();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}
/** Positions [start, start + length) of the sequence (dim 1), as a new tensor. */
function seqSlice(x: Tensor, start: number, length: number): Tensor {
  return x.narrow(1, start, length).contiguous().detach();
}

/** One block as a whole attention: its own lse and output are the row's final ones. */
const blockAttention = (causal: boolean) =>
  defineFunction({
    name: "BlockAttention",
    forward(ctx, q: Tensor, k: Tensor, v: Tensor) {
      const { out, lse } = F.block_attention_forward(q, k, v, causal);
      ctx.saved = [q, k, v, out, lse];
      return out;
    },
    backward(ctx, grad) {
      const [q, k, v, out, lse] = ctx.saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
      const { dq, dk, dv } = F.block_attention_backward(grad, q, k, v, out, lse, causal);
      return [dq, dk, dv];
    },
  });

describe("block attention", () => {
  it("a causal block over the whole sequence is causal attention, and lse is log-sum-exp of the scores", () => {
    const [b, s, nh, nkv, d] = [2, 5, 4, 2, 3];
    const q = rand([b, s, nh, d], 2);
    const k = rand([b, s, nkv, d], 2);
    const v = rand([b, s, nkv, d]);
    const { out, lse } = F.block_attention_forward(q, k, v, true);
    expect(
      maxDiff(
        out,
        noGrad(() => F.causal_attention(q, k, v)),
      ),
    ).toBeLessThan(1e-6);
    const [qv, kv, lv] = [q.values(), k.values(), lse.values()];
    let worst = 0;
    for (let bi = 0; bi < b; bi++)
      for (let h = 0; h < nh; h++)
        for (let i = 0; i < s; i++) {
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            const kh = Math.floor(h / (nh / nkv)); // GQA: query head h reads KV head h / rep
            for (let e = 0; e < d; e++)
              dot += qv[((bi * s + i) * nh + h) * d + e]! * kv[((bi * s + j) * nkv + kh) * d + e]!;
            sum += Math.exp(dot / Math.sqrt(d));
          }
          worst = Math.max(worst, Math.abs(Math.log(sum) - lv[(bi * nh + h) * s + i]!));
        }
    expect(worst).toBeLessThan(1e-5);
  });

  it("stays finite for large scores (the max is subtracted before exp)", () => {
    const q = rand([1, 4, 2, 8], 100);
    const k = rand([1, 4, 2, 8], 100);
    const { out, lse } = F.block_attention_forward(q, k, rand([1, 4, 2, 8]), true);
    expect(out.toArray().every(Number.isFinite)).toBe(true);
    expect(lse.toArray().every(Number.isFinite)).toBe(true);
  });

  const TOL = 2e-2; // float32 central differences with eps 1e-2
  it("gradient check: causal block with GQA (4 query heads, 2 KV heads)", () => {
    const r = gradcheck(blockAttention(true), [rand([2, 4, 4, 3]), rand([2, 4, 2, 3]), rand([2, 4, 2, 3])]);
    expect(r.maxRelErr).toBeLessThan(TOL);
  });
  it("gradient check: full block with more keys than queries, GQA and plain multi-head", () => {
    const gqa = gradcheck(blockAttention(false), [
      rand([1, 3, 4, 2]),
      rand([1, 5, 1, 2]),
      rand([1, 5, 1, 2]),
    ]);
    expect(gqa.maxRelErr).toBeLessThan(TOL);
    const mha = gradcheck(blockAttention(false), [
      rand([2, 3, 2, 3]),
      rand([2, 4, 2, 3]),
      rand([2, 4, 2, 3]),
    ]);
    expect(mha.maxRelErr).toBeLessThan(TOL);
  });

  it("two blocks merged through their lse give causal attention over both, and its gradients", () => {
    const [b, s, nh, nkv, d] = [2, 3, 4, 2, 4]; // the sequence is two blocks of s positions
    const q = rand([b, 2 * s, nh, d]).requiresGrad_();
    const k = rand([b, 2 * s, nkv, d]).requiresGrad_();
    const v = rand([b, 2 * s, nkv, d]).requiresGrad_();
    const dout = rand([b, 2 * s, nh, d]);
    const ref = F.causal_attention(q, k, v);
    ref.backward(dout);

    const [q1, q2] = [seqSlice(q, 0, s), seqSlice(q, s, s)];
    const [k1, k2] = [seqSlice(k, 0, s), seqSlice(k, s, s)];
    const [v1, v2] = [seqSlice(v, 0, s), seqSlice(v, s, s)];
    // the second block of queries sees all of block 1 and block 2 causally:
    //   lse = log(exp(lse_a) + exp(lse_b)),  out = exp(lse_a - lse) out_a + exp(lse_b - lse) out_b
    const a = F.block_attention_forward(q2, k1, v1, false);
    const bb = F.block_attention_forward(q2, k2, v2, true);
    const lse = new Float32Array(a.lse.numel);
    const out = new Float32Array(a.out.numel);
    const [la, lb, oa, ob] = [a.lse.values(), bb.lse.values(), a.out.values(), bb.out.values()];
    for (let i = 0; i < lse.length; i++) lse[i] = Math.log(Math.exp(la[i]!) + Math.exp(lb[i]!));
    for (let bi = 0; bi < b; bi++)
      for (let t = 0; t < s; t++)
        for (let h = 0; h < nh; h++) {
          const li = (bi * nh + h) * s + t;
          const [wa, wb] = [Math.exp(la[li]! - lse[li]!), Math.exp(lb[li]! - lse[li]!)];
          for (let e = 0; e < d; e++) {
            const oi = ((bi * s + t) * nh + h) * d + e;
            out[oi] = wa * oa[oi]! + wb * ob[oi]!;
          }
        }
    const out2 = new Tensor(out, [b, s, nh, d]);
    const lse2 = new Tensor(lse, [b, nh, s]);
    expect(maxDiff(out2, seqSlice(ref, s, s))).toBeLessThan(1e-6);

    // the backward of every block from the final lse and output of its rows, summed per input
    const first = F.block_attention_forward(q1, k1, v1, true);
    const g11 = F.block_attention_backward(seqSlice(dout, 0, s), q1, k1, v1, first.out, first.lse, true);
    const g21 = F.block_attention_backward(seqSlice(dout, s, s), q2, k1, v1, out2, lse2, false);
    const g22 = F.block_attention_backward(seqSlice(dout, s, s), q2, k2, v2, out2, lse2, true);
    const sum = (x: Tensor, y: Tensor) =>
      new Tensor(
        Float32Array.from(x.values(), (xi, i) => xi + y.values()[i]!),
        x.shape,
      );
    const tol = 1e-5;
    expect(maxDiff(g11.dq, seqSlice(q.grad!, 0, s))).toBeLessThan(tol);
    expect(maxDiff(sum(g21.dq, g22.dq), seqSlice(q.grad!, s, s))).toBeLessThan(tol);
    expect(maxDiff(sum(g11.dk, g21.dk), seqSlice(k.grad!, 0, s))).toBeLessThan(tol);
    expect(maxDiff(g22.dk, seqSlice(k.grad!, s, s))).toBeLessThan(tol);
    expect(maxDiff(sum(g11.dv, g21.dv), seqSlice(v.grad!, 0, s))).toBeLessThan(tol);
    expect(maxDiff(g22.dv, seqSlice(v.grad!, s, s))).toBeLessThan(tol);
    // the check above is not vacuous: a block's gradient alone is not the whole
    expect(maxDiff(g21.dq, seqSlice(q.grad!, s, s))).toBeGreaterThan(1e-3);
  });

  it("names the shapes that do not fit", () => {
    const q = rand([1, 4, 4, 2]);
    const k = rand([1, 4, 2, 2]);
    expect(() => F.block_attention_forward(q, rand([1, 3, 2, 2]), rand([1, 3, 2, 2]), true)).toThrow(
      /causal \(diagonal\) block needs as many queries as keys, got 4 and 3/,
    );
    expect(() => F.block_attention_forward(q, rand([1, 4, 3, 2]), rand([1, 4, 3, 2]), false)).toThrow(
      /heads % kv_heads/,
    );
    const { out, lse } = F.block_attention_forward(q, k, k, true);
    expect(lse.shape).toEqual([1, 4, 4]); // [batch, heads, seq_q]
    expect(() => F.block_attention_backward(out, q, k, k, out, rand([1, 4, 3]), true)).toThrow(
      /lse is \[1, 4, 3\], expected \[1, 4, 4\]/,
    );
  });
});
