import { describe, expect, it } from "vitest";
import { blasThreadTimeout, loadBlas } from "../src/index.ts";

/** Row-major reference product in float64: C = op(A) op(B). */
function reference(
  ta: boolean,
  tb: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ta ? p * m + i : i * k + p]! * b[tb ? j * k + p : p * n + j]!;
      c[i * n + j] = s;
    }
  return c;
}

const { blas, reason } = loadBlas();

describe("OpenBLAS's thread timeout", () => {
  it("is in the environment OpenBLAS read as it loaded", () => {
    expect(process.env.OPENBLAS_THREAD_TIMEOUT).toBe(blasThreadTimeout());
  });

  it("keeps a value the environment sets, else 4 (idle threads sleep at once)", () => {
    const saved = process.env.OPENBLAS_THREAD_TIMEOUT;
    try {
      process.env.OPENBLAS_THREAD_TIMEOUT = "12";
      expect(blasThreadTimeout()).toBe("12");
      delete process.env.OPENBLAS_THREAD_TIMEOUT;
      expect(blasThreadTimeout()).toBe("4");
    } finally {
      if (saved === undefined) delete process.env.OPENBLAS_THREAD_TIMEOUT;
      else process.env.OPENBLAS_THREAD_TIMEOUT = saved;
    }
  });
});

describe.skipIf(!blas)(`OpenBLAS addon${reason ? ` (skipped: ${reason})` : ""}`, () => {
  it("multiplies with every transpose flag", () => {
    const [m, n, k] = [5, 7, 3];
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const c = new Float32Array(m * n);
        blas!.sgemm(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, 0, c, n);
        const want = reference(ta, tb, m, n, k, a, b);
        for (let i = 0; i < c.length; i++) expect(c[i]).toBeCloseTo(want[i]!, 5);
      }
  });

  it("accumulates with beta = 1", () => {
    const c = Float32Array.of(1, 1, 1, 1);
    blas!.sgemm(false, false, 2, 2, 1, Float32Array.of(1, 2), 1, Float32Array.of(3, 4), 2, 1, c, 2);
    expect([...c]).toEqual([4, 5, 7, 9]);
  });

  it("refuses arrays too small for their matrices", () => {
    const c = new Float32Array(4);
    expect(() =>
      blas!.sgemm(false, false, 2, 2, 2, new Float32Array(3), 2, new Float32Array(4), 2, 0, c, 2),
    ).toThrow("sgemm: an array is too small for its matrix");
    expect(() => blas!.sgemm(false, false, 2, 2, 2, new Float64Array(4) as never, 2, c, 2, 0, c, 2)).toThrow(
      "sgemm: a must be a Float32Array",
    );
  });

  it("names its core and sets its threads", () => {
    expect(blas!.coreName()).toMatch(/\w+/);
    blas!.setNumThreads(1);
    expect(blas!.getNumThreads()).toBe(1);
    expect(() => blas!.setNumThreads(0)).toThrow("setNumThreads: expected a positive integer");
  });

  it("updates AdamW's weights and moments with float32's bits, on any number of threads", () => {
    const f = Math.fround; // float32 arithmetic: float64, then rounded (exact for + - * / sqrt)
    const n = 300_001; // more than two threads' minimum, and not a whole number of cache lines
    const w0 = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const g = Float32Array.from({ length: n }, (_, i) => Math.cos(3 * i) * 1e-2);
    const m0 = Float32Array.from({ length: n }, (_, i) => Math.sin(7 * i) * 1e-3);
    const v0 = Float32Array.from({ length: n }, (_, i) => Math.cos(5 * i) ** 2 * 1e-5);
    const [b1, c1, b2, c2, inv, eps, lr, decay] = [
      0.9,
      0.1,
      0.999,
      0.001,
      1 / 0.0447,
      1e-8,
      3e-4,
      0.99997,
    ].map(f);
    const want = { w: new Float32Array(w0), m: new Float32Array(m0), v: new Float32Array(v0) };
    for (let i = 0; i < n; i++) {
      const mi = f(f(m0[i]! * b1!) + f(g[i]! * c1!));
      const vi = f(f(v0[i]! * b2!) + f(f(g[i]! * g[i]!) * c2!));
      [want.m[i], want.v[i]] = [mi, vi];
      want.w[i] = f(f(w0[i]! * decay!) - f(lr! * f(mi / f(f(f(Math.sqrt(vi)) * inv!) + eps!))));
    }
    for (const threads of [1, 2, 3]) {
      const [w, m, v] = [new Float32Array(w0), new Float32Array(m0), new Float32Array(v0)];
      blas!.adamw(w, g, m, v, b1!, c1!, b2!, c2!, inv!, eps!, lr!, decay!, threads);
      expect(Buffer.from(w.buffer).equals(Buffer.from(want.w.buffer))).toBe(true);
      expect(Buffer.from(m.buffer).equals(Buffer.from(want.m.buffer))).toBe(true);
      expect(Buffer.from(v.buffer).equals(Buffer.from(want.v.buffer))).toBe(true);
    }
  });

  it("refuses AdamW arrays of different lengths, or no thread", () => {
    const [a, b] = [new Float32Array(4), new Float32Array(3)];
    expect(() => blas!.adamw(a, b, a, a, 0.9, 0.1, 0.999, 0.001, 1, 1e-8, 1e-3, 1, 1)).toThrow(
      "adamw: w, g, m and v must have the same length",
    );
    expect(() => blas!.adamw(a, a, a, a, 0.9, 0.1, 0.999, 0.001, 1, 1e-8, 1e-3, 1, 0)).toThrow(
      "adamw: threads must be a positive integer",
    );
  });

  it("rotates RoPE's halves with the TypeScript loop's bits (float64, rounded once), on any number of threads", () => {
    const [b, seq, heads, d] = [3, 40, 5, 8];
    const x = Float32Array.from({ length: b * seq * heads * d }, (_, i) => Math.sin(0.37 * i));
    const cos = Float32Array.from({ length: seq * d }, (_, i) => Math.cos(0.11 * i));
    const sin = Float32Array.from({ length: seq * d }, (_, i) => Math.sin(0.11 * i));
    for (const sign of [1, -1] as const) {
      const want = new Float32Array(x.length);
      for (let r = 0; r < x.length / d; r++) {
        const [o, cs] = [r * d, (Math.floor(r / heads) % seq) * d];
        for (let j = 0; j < d / 2; j++) {
          const [x1, x2] = [x[o + j]!, x[o + j + d / 2]!];
          want[o + j] = x1 * cos[cs + j]! - sign * x2 * sin[cs + j]!;
          want[o + j + d / 2] = x2 * cos[cs + j + d / 2]! + sign * x1 * sin[cs + j + d / 2]!;
        }
      }
      for (const threads of [1, 2, 3]) {
        const out = new Float32Array(x.length);
        blas!.rope(x, cos, sin, sign, seq, heads, d, out, threads);
        expect(Buffer.from(out.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      }
    }
    expect(() => blas!.rope(x, cos, sin, 1, seq, heads, d, new Float32Array(4), 1)).toThrow(
      "rope: src and out must hold whole [seq, heads, d] blocks of the same size",
    );
    expect(() =>
      blas!.rope(x, cos.subarray(1), sin, 1, seq, heads, d, new Float32Array(x.length), 1),
    ).toThrow("rope: cos and sin must be [seq, d]");
    expect(() => blas!.rope(x, cos, sin, 2 as never, seq, heads, d, new Float32Array(x.length), 1)).toThrow(
      "rope: sign must be 1 or -1",
    );
    expect(() => blas!.rope(x, cos, sin, 1, seq, heads, d, new Float32Array(x.length), 0)).toThrow(
      "rope: threads must be a positive integer",
    );
  });

  it("cross-entropy: loss and gradient match float64, ignored rows get zeros, any thread count the same bits", () => {
    const [n, vocab, ignore] = [24, 10007, -100]; // 240k logits: up to 3 threads; rows not a multiple of 16
    const x = Float32Array.from({ length: n * vocab }, (_, i) => Math.sin(i * 0.37) * 8);
    x.fill(-1e4, 5 * vocab, 6 * vocab); // a row whose exps underflow but for its one large logit
    x[5 * vocab + 17] = 100;
    const t = Int32Array.from({ length: n }, (_, i) => (i * 7919) % vocab);
    t[2] = ignore;
    t[5] = 17;
    const scale = 1 / (n - 1);
    const run = (threads: number) => {
      const grad = new Float32Array(n * vocab).fill(Number.NaN);
      const losses = new Float64Array(n).fill(Number.NaN);
      blas!.crossEntropy(x, t, ignore, scale, grad, losses, threads);
      return { grad, losses };
    };
    const one = run(1);
    for (let i = 0; i < n; i++) {
      const row = x.subarray(i * vocab, (i + 1) * vocab);
      const g = one.grad.subarray(i * vocab, (i + 1) * vocab);
      if (t[i] === ignore) {
        expect(one.losses[i]).toBe(0);
        expect(g.every((v) => v === 0)).toBe(true);
        continue;
      }
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      expect(one.losses[i]).toBeCloseTo(max + Math.log(sum) - row[t[i]!]!, 6);
      for (let j = 0; j < vocab; j++) {
        const p = Math.exp(row[j]! - max) / sum;
        const want = (p - (j === t[i] ? 1 : 0)) * scale;
        // a few float32 roundings of p * scale, and at the target one of scale (p - 1 cancels there)
        const tol = 4e-6 * p * scale + (j === t[i] ? 2e-7 * scale : 0) + 1e-37;
        expect(Math.abs(g[j]! - want), `row ${i}, logit ${j}`).toBeLessThanOrEqual(tol);
      }
    }
    for (const threads of [2, 3]) {
      const other = run(threads);
      expect(Buffer.from(other.grad.buffer).equals(Buffer.from(one.grad.buffer))).toBe(true);
      expect(other.losses).toEqual(one.losses);
    }
  });

  it("cross-entropy refuses a target outside the vocabulary and mismatched arrays", () => {
    const x = new Float32Array(6);
    const ok = () => [new Float32Array(6), new Float64Array(2)] as const;
    expect(() => blas!.crossEntropy(x, Int32Array.of(0, 3), -100, 1, ...ok(), 1)).toThrow(
      "crossEntropy: target 3 is outside [0, 3)",
    );
    expect(() =>
      blas!.crossEntropy(x, Int32Array.of(0, 1), -100, 1, new Float32Array(5), new Float64Array(2), 1),
    ).toThrow("crossEntropy: grad must be [n, vocab] and losses [n]");
    expect(() => blas!.crossEntropy(x, Int32Array.of(0, 1, 2, 3), -100, 1, ...ok(), 1)).toThrow(
      "crossEntropy: logits must be [n, vocab] for n targets",
    );
    expect(() => blas!.crossEntropy(x, Float32Array.of(0, 1) as never, -100, 1, ...ok(), 1)).toThrow(
      "crossEntropy: targets must be a Int32Array",
    );
  });

  /** Causal GQA attention and its backward in float64: [b, s, nh, d] queries, [b, s, nkv, d] keys/values. */
  function attentionReference(
    [b, s, nh, nkv, d]: number[],
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dout: Float32Array,
  ) {
    const at = (heads: number, bi: number, i: number, h: number) => ((bi * s + i) * heads + h) * d;
    const out = new Float64Array(q.length);
    const [dq, dk, dv] = [new Float64Array(q.length), new Float64Array(k.length), new Float64Array(v.length)];
    for (let bi = 0; bi < b; bi++)
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / (nh / nkv));
        for (let i = 0; i < s; i++) {
          const p: number[] = [];
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += q[at(nh, bi, i, h) + c]! * k[at(nkv, bi, j, g) + c]!;
            p.push(dot / Math.sqrt(d));
          }
          const max = Math.max(...p);
          const e = p.map((x) => Math.exp(x - max));
          const sum = e.reduce((a, x) => a + x, 0);
          const prob = e.map((x) => x / sum);
          const dP = prob.map((_, j) => {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += dout[at(nh, bi, i, h) + c]! * v[at(nkv, bi, j, g) + c]!;
            return dot;
          });
          const rowDot = dP.reduce((a, x, j) => a + x * prob[j]!, 0);
          for (let j = 0; j <= i; j++) {
            const dS = (prob[j]! * (dP[j]! - rowDot)) / Math.sqrt(d);
            for (let c = 0; c < d; c++) {
              out[at(nh, bi, i, h) + c] += prob[j]! * v[at(nkv, bi, j, g) + c]!;
              dv[at(nkv, bi, j, g) + c] += prob[j]! * dout[at(nh, bi, i, h) + c]!;
              dq[at(nh, bi, i, h) + c] += dS * k[at(nkv, bi, j, g) + c]!;
              dk[at(nkv, bi, j, g) + c] += dS * q[at(nh, bi, i, h) + c]!;
            }
          }
        }
      }
    return { out, dq, dk, dv };
  }

  it("attention: forward and backward match float64 (GQA, head dims on and off the 64-wide blocks), any thread count the same bits", () => {
    for (const dims of [
      [2, 7, 4, 2, 6],
      [1, 70, 2, 1, 80],
      [3, 9, 3, 3, 64],
    ]) {
      const [b, s, nh, nkv, d] = dims as [number, number, number, number, number];
      const rand = (n: number, seed: number) =>
        Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + seed) * 1.5);
      const [q, k, v, dout] = [
        rand(b * s * nh * d, 1),
        rand(b * s * nkv * d, 2),
        rand(b * s * nkv * d, 3),
        rand(b * s * nh * d, 4),
      ];
      const run = (threads: number) => {
        const out = new Float32Array(q.length);
        const probs = new Float32Array(b * nh * s * s);
        const [dq, dk, dv] = [
          new Float32Array(q.length),
          new Float32Array(k.length),
          new Float32Array(v.length),
        ];
        blas!.attentionForward(q, k, v, b, s, nh, nkv, d, out, probs, threads);
        blas!.attentionBackward(q, k, v, probs, dout, b, s, nh, nkv, d, dq, dk, dv, threads);
        return { out, dq, dk, dv };
      };
      const got = run(1);
      const want = attentionReference(dims, q, k, v, dout);
      for (const name of ["out", "dq", "dk", "dv"] as const) {
        const scale = Math.max(...want[name].map(Math.abs));
        for (let i = 0; i < want[name].length; i++)
          expect(Math.abs(got[name][i]! - want[name][i]!), `${dims} ${name}[${i}]`).toBeLessThan(
            2e-6 * scale * Math.sqrt(s),
          );
      }
      for (const threads of [2, 3]) {
        const other = run(threads);
        for (const name of ["out", "dq", "dk", "dv"] as const)
          expect(
            Buffer.from(other[name].buffer).equals(Buffer.from(got[name].buffer)),
            `${dims} ${name}, ${threads} threads`,
          ).toBe(true);
      }
    }
  });

  it("attention refuses arrays of the wrong size and heads that kv heads do not divide", () => {
    const [q, kv, out, probs] = [
      new Float32Array(16),
      new Float32Array(8),
      new Float32Array(16),
      new Float32Array(16),
    ];
    expect(() => blas!.attentionForward(q, kv, kv, 1, 2, 2, 1, 4, out, probs, 1)).toThrow(
      "attentionForward: probs must have 8 elements, not 16",
    );
    expect(() => blas!.attentionForward(q, kv, kv, 1, 2, 3, 2, 4, out, probs, 1)).toThrow(
      "attentionForward: heads must be a multiple of kvHeads",
    );
    expect(() =>
      blas!.attentionBackward(q, kv, kv, probs.subarray(8), q, 1, 2, 2, 1, 4, q, kv, new Float32Array(4), 1),
    ).toThrow("attentionBackward: dv must have 8 elements, not 4");
  });

  it("SwiGLU: forward and backward match float64 on any thread count, with the same bits", () => {
    const n = 200_003; // up to 3 threads, and a tail shorter than a vector
    const gate = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 30);
    const up = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11) * 2);
    const dy = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.05));
    const run = (threads: number) => {
      const [out, dGate, dUp] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
      blas!.swiglu(gate, up, out, threads);
      blas!.swigluBackward(gate, up, dy, dGate, dUp, threads);
      return { out, dGate, dUp };
    };
    const one = run(1);
    for (let i = 0; i < n; i++) {
      const [a, u] = [gate[i]!, up[i]!];
      const s = 1 / (1 + Math.exp(-a));
      const want = { out: a * s * u, dGate: dy[i]! * u * s * (1 + a * (1 - s)), dUp: dy[i]! * s * a };
      // float32 roundings of each term (1 + a (1 - s) cancels near a = -1.28: its terms set the scale)
      const size = { out: want.out, dGate: dy[i]! * u * s * (1 + Math.abs(a * (1 - s))), dUp: want.dUp };
      for (const name of ["out", "dGate", "dUp"] as const)
        expect(Math.abs(one[name][i]! - want[name]), `${name}[${i}]`).toBeLessThanOrEqual(
          2e-6 * Math.abs(size[name]) + 1e-30,
        );
    }
    for (const threads of [2, 3]) {
      const other = run(threads);
      for (const name of ["out", "dGate", "dUp"] as const)
        expect(Buffer.from(other[name].buffer).equals(Buffer.from(one[name].buffer))).toBe(true);
    }
    const short = new Float32Array(n - 1);
    expect(() => blas!.swiglu(gate, up, short, 1)).toThrow("swiglu: the arrays must have the same length");
    expect(() => blas!.swigluBackward(gate, up, dy, short, short, 1)).toThrow(
      "swigluBackward: the arrays must have the same length",
    );
  });

  it("adds elementwise with float32's bits on any thread count", () => {
    const n = 400_003;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
    const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3));
    for (const threads of [1, 2, 3]) {
      const out = new Float32Array(n);
      blas!.add(a, b, out, threads);
      for (let i = 0; i < n; i++)
        if (out[i] !== Math.fround(a[i]! + b[i]!)) expect(out[i]).toBe(Math.fround(a[i]! + b[i]!));
    }
    expect(() => blas!.add(a, b, new Float32Array(3), 1)).toThrow(
      "add: the arrays must have the same length",
    );
  });
});
