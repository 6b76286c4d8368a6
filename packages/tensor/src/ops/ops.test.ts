import { describe, expect, it } from "vitest";
import {
  Generator,
  Tensor,
  F,
  gradcheck,
  tensor,
  noGrad,
  defineFunction,
  kernelCacheSize,
  setGemmBackend,
} from "../index.ts";
import { blasOrReason } from "../kernels/blas.ts";
import { nativeLoss, ortLoss } from "./loss.ts";
import { ortAttentionBackward, ortAttentionForward } from "./attention.ts";
import { ortSwiglu, ortSwigluBackward } from "./elementwise.ts";
import { uninitialized } from "./alloc.ts";

const gen = new Generator(7, "ops-test");
function rand(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float32Array.from({ length: n }, () => (gen.random() * 2 - 1) * scale),
    shape,
  );
}
function ids(shape: number[], vocab: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Int32Array.from({ length: n }, () => gen.randint(vocab)),
    shape,
  );
}
const TOL = 2e-2; // float32 central differences with eps 1e-2

describe("gradient checks (finite differences)", () => {
  it("add, sub, mul, scale", () => {
    expect(gradcheck((a, b) => a.add(b), [rand([3, 4]), rand([3, 4])]).maxRelErr).toBeLessThan(TOL);
    expect(gradcheck((a, b) => a.sub(b), [rand([3, 4]), rand([3, 4])]).maxRelErr).toBeLessThan(TOL);
    expect(gradcheck((a, b) => a.mul(b), [rand([3, 4]), rand([3, 4])]).maxRelErr).toBeLessThan(TOL);
    expect(gradcheck((a) => a.mul(-2.5), [rand([5])]).maxRelErr).toBeLessThan(TOL);
  });
  it("sum and mean", () => {
    expect(gradcheck((a) => a.sum(), [rand([2, 3])]).maxRelErr).toBeLessThan(TOL);
    expect(gradcheck((a) => a.mean(), [rand([2, 3])]).maxRelErr).toBeLessThan(TOL);
  });
  it("linear", () => {
    expect(gradcheck((x, w) => F.linear(x, w), [rand([2, 3, 5]), rand([4, 5])]).maxRelErr).toBeLessThan(TOL);
  });
  it("matmul: batched and with a broadcast 2-d right side", () => {
    expect(gradcheck((a, b) => F.matmul(a, b), [rand([2, 3, 4]), rand([2, 4, 5])]).maxRelErr).toBeLessThan(
      TOL,
    );
    expect(gradcheck((a, b) => F.matmul(a, b), [rand([2, 3, 4]), rand([4, 5])]).maxRelErr).toBeLessThan(TOL);
  });
  it("embedding", () => {
    const i = ids([2, 3], 5);
    expect(gradcheck((w) => F.embedding(i, w), [rand([5, 4])]).maxRelErr).toBeLessThan(TOL);
  });
  it("rms_norm (WebAssembly rows of 8, and TypeScript loops for rows of 6)", () => {
    expect(gradcheck((x, w) => F.rms_norm(x, w, 1e-5), [rand([3, 8]), rand([8])]).maxRelErr).toBeLessThan(
      TOL,
    );
    expect(gradcheck((x, w) => F.rms_norm(x, w, 1e-5), [rand([2, 6]), rand([6])]).maxRelErr).toBeLessThan(
      TOL,
    );
  });
  it("silu and swiglu", () => {
    expect(gradcheck((x) => F.silu(x), [rand([10], 3)]).maxRelErr).toBeLessThan(TOL);
    expect(gradcheck((g, u) => F.swiglu(g, u), [rand([10], 3), rand([10])]).maxRelErr).toBeLessThan(TOL);
  });
  // onnxruntime's Sigmoid is a rational approximation (MLAS): a few float32 ulps (6e-8) off, not one
  it("swiglu matches float64 on a long array, with gates far into sigmoid's flat tails", () => {
    const n = 8199;
    const a = Float32Array.from({ length: n }, (_, i) =>
      i < 8 ? [-120, -90, -30, 0, 1e-8, 30, 90, 120][i]! : Math.sin(i) * 12,
    );
    const u = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3) * 2);
    const dy = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.07));
    const [gate, up] = [new Tensor(a, [n]).requiresGrad_(), new Tensor(u, [n]).requiresGrad_()];
    const y = F.swiglu(gate, up);
    y.backward(new Tensor(dy, [n]));
    const [yv, da, du] = [y, gate.grad!, up.grad!].map((t) => t.values() as Float32Array);
    for (let i = 0; i < n; i++) {
      const x = a[i]!;
      const s = 1 / (1 + Math.exp(-x));
      const close = (got: number, want: number) =>
        expect(Math.abs(got - want), `element ${i}`).toBeLessThanOrEqual(5e-6 * Math.max(1, Math.abs(want)));
      close(yv![i]!, x * s * u[i]!);
      close(du![i]!, dy[i]! * x * s);
      close(da![i]!, dy[i]! * u[i]! * s * (1 + x * (1 - s)));
    }
  });
  it("rotary embedding", () => {
    const s = 3;
    const d = 4;
    const ang = Array.from({ length: s * d }, (_, k) => Math.floor(k / d) * 0.7 * (1 + (k % (d / 2))));
    const cos = tensor(ang.map(Math.cos), [s, d]);
    const sin = tensor(ang.map(Math.sin), [s, d]);
    expect(gradcheck((x) => F.apply_rotary_emb(x, cos, sin), [rand([2, s, 2, d])]).maxRelErr).toBeLessThan(
      TOL,
    );
  });
  it("causal attention with GQA (4 query heads, 2 KV heads)", () => {
    const r = gradcheck(
      (q, k, v) => F.causal_attention(q, k, v),
      [rand([2, 5, 4, 3]), rand([2, 5, 2, 3]), rand([2, 5, 2, 3])],
    );
    expect(r.maxRelErr).toBeLessThan(TOL);
  });
  it("cross entropy, with an ignored target", () => {
    const t = tensor([1, -100, 3, 0], [4], "int32");
    expect(gradcheck((x) => F.cross_entropy(x, t), [rand([4, 6], 2)]).maxRelErr).toBeLessThan(TOL);
  });
  it("views: reshape, transpose, narrow, split, cat", () => {
    expect(
      gradcheck(
        (a) =>
          a
            .transpose(0, 1)
            .reshape(6)
            .mul(tensor([1, 2, 3, 4, 5, 6])),
        [rand([2, 3])],
      ).maxRelErr,
    ).toBeLessThan(TOL);
    expect(gradcheck((a) => a.narrow(1, 1, 2).contiguous(), [rand([3, 4])]).maxRelErr).toBeLessThan(TOL);
    expect(
      gradcheck(
        (a) => {
          const [x, y] = a.split(2, 1);
          return F.cat([y!, x!], 1);
        },
        [rand([3, 4])],
      ).maxRelErr,
    ).toBeLessThan(TOL);
  });
  it("a custom function (defineFunction): hand-written backward", () => {
    const cube = defineFunction({
      name: "Cube",
      forward: (ctx, x: Tensor) => {
        ctx.saved = [x];
        return new Tensor(
          (x.values() as Float32Array).map((v) => v * v * v),
          x.shape,
        );
      },
      backward: (ctx, g) => [
        new Tensor(
          (ctx.saved[0]!.values() as Float32Array).map((v, i) => 3 * v * v * g.values()[i]!),
          g.shape,
        ),
      ],
    });
    expect(gradcheck((x) => cube(x), [rand([6])]).maxRelErr).toBeLessThan(TOL);
  });
});

describe("cross-entropy's two passes", () => {
  const { blas, reason } = blasOrReason();
  it.skipIf(!blas)(
    `native and ORT agree on the loss and gradient${reason ? ` (skipped: ${reason})` : ""}`,
    () => {
      const [n, vocab] = [6, 1000];
      const x = rand([n, vocab], 12).values() as Float32Array;
      const t = Int32Array.from({ length: n }, (_, i) => (i * 331) % vocab);
      t[4] = -100;
      const [gNative, gOrt] = [new Float32Array(n * vocab), new Float32Array(n * vocab)];
      const lossNative = nativeLoss(blas!, x, t, -100, 1 / 5, gNative);
      const lossOrt = ortLoss(x, t, [n, vocab], -100, 1 / 5, gOrt);
      expect(lossNative).toBeCloseTo(lossOrt, 4);
      for (let i = 0; i < gNative.length; i++) expect(Math.abs(gNative[i]! - gOrt[i]!)).toBeLessThan(1e-7);
    },
  );
});

describe("attention's two implementations", () => {
  const { blas, reason } = blasOrReason();
  it.skipIf(!blas)(
    `native and ORT agree on the output and gradients${reason ? ` (skipped: ${reason})` : ""}`,
    () => {
      const [b, s, nh, nkv, d] = [2, 19, 6, 2, 16];
      const [q, k, v, dout] = [
        [b, s, nh, d],
        [b, s, nkv, d],
        [b, s, nkv, d],
        [b, s, nh, d],
      ].map((shape) => rand(shape, 2).values() as Float32Array) as [
        Float32Array,
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      const run = (native: boolean) => {
        const out = new Float32Array(q.length);
        const probs = new Float32Array(b * nh * s * s);
        const grads: [Float32Array, Float32Array, Float32Array] = [
          new Float32Array(q.length),
          new Float32Array(k.length),
          new Float32Array(v.length),
        ];
        if (native) {
          blas!.attentionForward(q, k, v, b, s, nh, nkv, d, out, probs, 2);
          blas!.attentionBackward(q, k, v, probs, dout, b, s, nh, nkv, d, ...grads, 2);
        } else {
          ortAttentionForward(q, k, v, { b, s, nh, nkv, d }, out, probs);
          ortAttentionBackward(q, k, v, probs, dout, { b, s, nh, nkv, d }, grads);
        }
        return [out, ...grads];
      };
      const [native, ort] = [run(true), run(false)];
      native.forEach((got, i) => {
        for (let j = 0; j < got.length; j++) expect(got[j]).toBeCloseTo(ort[i]![j]!, 4);
      });
    },
  );
});

describe("SwiGLU's two implementations", () => {
  const { blas, reason } = blasOrReason();
  it.skipIf(!blas)(`native and ORT agree${reason ? ` (skipped: ${reason})` : ""}`, () => {
    const [gate, up, dy] = [rand([3, 1000], 12), rand([3, 1000], 2), rand([3, 1000])].map(
      (t) => t.values() as Float32Array,
    ) as [Float32Array, Float32Array, Float32Array];
    const arrays = () => [new Float32Array(3000), new Float32Array(3000), new Float32Array(3000)] as const;
    const [out, dGate, dUp] = arrays();
    blas!.swiglu(gate, up, out, 2);
    blas!.swigluBackward(gate, up, dy, dGate, dUp, 2);
    const [outOrt, dGateOrt, dUpOrt] = arrays();
    ortSwiglu(gate, up, outOrt);
    ortSwigluBackward(gate, up, dy, dGateOrt, dUpOrt);
    for (const [got, want] of [
      [out, outOrt],
      [dGate, dGateOrt],
      [dUp, dUpOrt],
    ] as const)
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
  });
});

describe("forward values", () => {
  it("matches hand-computed results", () => {
    const x = tensor([1, 2, 3, 4], [2, 2]);
    const w = tensor([1, 0, 1, 1], [2, 2]);
    expect(F.linear(x, w).toArray()).toEqual([1, 3, 3, 7]);
    const loss = F.cross_entropy(tensor([0, 0], [1, 2]), tensor([1], [1], "int32"));
    expect(loss.item()).toBeCloseTo(Math.log(2), 6);
    // row 1: the target's probability underflows float32 (e^-200), its loss is still 200; row 2: loss ~0
    const far = F.cross_entropy(tensor([0, -200, 10, -300], [2, 2]), tensor([1, 0], [2], "int32"));
    expect(far.item()).toBeCloseTo(200 / 2, 4);
    const n = F.rms_norm(tensor([3, 4], [1, 2]), tensor([1, 2]), 0);
    const rms = Math.sqrt(12.5);
    expect(n.toArray()[0]).toBeCloseTo(3 / rms, 6);
    expect(n.toArray()[1]).toBeCloseTo(8 / rms, 6);
  });
  it("attention attends only to the past: the first position copies its own value", () => {
    const q = rand([1, 3, 2, 4]);
    const k = rand([1, 3, 1, 4]);
    const v = rand([1, 3, 1, 4]);
    const out = noGrad(() => F.causal_attention(q, k, v)).values();
    const v0 = v.values().slice(0, 4);
    expect(Array.from(out.slice(0, 4))).toEqual(Array.from(v0).map((x) => expect.closeTo(x, 6)));
    expect(Array.from(out.slice(4, 8))).toEqual(Array.from(v0).map((x) => expect.closeTo(x, 6)));
  });
});

describe("shape errors", () => {
  it("names the shapes", () => {
    expect(() => F.linear(rand([2, 3]), rand([4, 5]))).toThrow(/\[2, 3\].*\[4, 5\]/);
    expect(() => rand([2, 3]).add(rand([3, 2]))).toThrow(/\[2, 3\] and \[3, 2\]/);
    expect(() => rand([6]).reshape(4, -1)).toThrow(/cannot reshape 6 elements/);
    expect(() => F.embedding(tensor([9], [1], "int32"), rand([5, 2]))).toThrow(/token id 9/);
    expect(() => F.cross_entropy(rand([2, 3]), tensor([0, 7], [2], "int32"))).toThrow(/target 7/);
    expect(() => rand([2]).backward()).toThrow(/does not require grad/);
  });
});

describe("set_: a weight's storage swapped between forward and backward (ZeRO-3)", () => {
  it("linear and rms_norm's backward read the weight as it is then; a freed tensor refuses to be read", () => {
    for (const [op, wShape] of [
      [(x: Tensor, w: Tensor) => F.linear(x, w), [4, 3]],
      [(x: Tensor, w: Tensor) => F.rms_norm(x, w, 1e-6), [3]],
    ] as const) {
      const x = rand([2, 3]).requiresGrad_();
      const w = rand([...wShape]).requiresGrad_();
      // the values gathered before the backward: other than the forward's, so a saved copy would show
      const later = w.values().map((v) => 2 * v + 0.5);
      const gradsWith = (values: Float32Array) => {
        const [x2, w2] = [x.detach().requiresGrad_(), new Tensor(values.slice(), w.shape).requiresGrad_()];
        op(x2, w2).sum().backward(); // dy = 1: the backward's weights alone set the gradients
        return [x2.grad!.toArray(), w2.grad!.toArray()];
      };
      const expected = gradsWith(later as Float32Array);
      expect(expected[0]).not.toEqual(gradsWith(w.values() as Float32Array)[0]);
      const y = op(x, w);
      w.set_(new Float32Array(0)); // freed after the forward, as ZeRO-3 does
      expect(() => w.values()).toThrow(/storage was freed/);
      w.set_(later); // gathered again before the backward, into a new buffer
      y.sum().backward();
      expect(x.grad!.toArray()).toEqual(expected[0]);
      expect(w.grad!.toArray()).toEqual(expected[1]);
      expect(() => w.set_(new Float32Array(1))).toThrow(/too few/);
    }
  });
});

describe("kernels", () => {
  it("the wide linear (8192+ outputs: backward in blocks, the last one partial) matches matmul", () => {
    const x = rand([3, 8]);
    const w = rand([9000, 8]);
    x.requiresGrad = true;
    w.requiresGrad = true;
    const y = F.linear(x, w);
    const r = rand([3, 9000]);
    y.backward(r);
    const [gx, gw] = [x.grad!.toArray(), w.grad!.toArray()];
    x.grad = null;
    w.grad = null;
    const ref = F.matmul(x, w.transpose(0, 1));
    ref.backward(r);
    const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    expect(maxDiff(y.toArray(), ref.toArray())).toBeLessThan(1e-5);
    expect(maxDiff(gx, x.grad!.toArray())).toBeLessThan(1e-4);
    expect(maxDiff(gw, w.grad!.toArray())).toBeLessThan(1e-5);
    // only one of the two gradients asked for
    for (const [a, b] of [
      [x, w],
      [w, x],
    ] as const) {
      a.grad = null;
      b.grad = null;
      b.requiresGrad = false;
      F.linear(x, w).backward(r);
      expect(maxDiff(a.grad!.toArray(), a === x ? gx : gw)).toBeLessThan(1e-5);
      expect(b.grad).toBeNull();
      b.requiresGrad = true;
    }
  });

  it("compiles each op signature once and reuses the session", () => {
    setGemmBackend("ort"); // on MLAS, each GEMM shape is a session
    const a = rand([4, 7]);
    const b = rand([5, 7]);
    F.linear(a, b);
    const n = kernelCacheSize();
    F.linear(rand([4, 7]), rand([5, 7]));
    expect(kernelCacheSize()).toBe(n);
    F.linear(rand([4, 7]), rand([6, 7]));
    expect(kernelCacheSize()).toBe(n + 1);
    setGemmBackend("auto");
  });

  it("gradcheck catches a wrong backward", () => {
    const wrong = defineFunction({
      name: "WrongSquare",
      forward: (_ctx, x: Tensor) =>
        new Tensor(
          (x.values() as Float32Array).map((v) => v * v),
          x.shape,
        ),
      backward: (_ctx, g) => [g], // should be 2 x g
    });
    expect(gradcheck((x) => wrong(x), [rand([4], 2)]).maxRelErr).toBeGreaterThan(0.1);
  });
});

describe("autograd engine", () => {
  it("accumulates into leaves across backward calls and fires post-accumulate hooks once per pass", () => {
    const w = rand([3]);
    w.requiresGrad = true;
    const seen: number[] = [];
    w.registerPostAccumulateGradHook((t) => seen.push(t.grad!.toArray()[0]!));
    // w is used twice in the graph: the hook must wait for both contributions
    const loss = () => w.mul(w).add(w).sum();
    loss().backward();
    const g1 = w.grad!.toArray();
    loss().backward();
    expect(w.grad!.toArray().map((v, i) => v / g1[i]!)).toEqual([2, 2, 2].map((x) => expect.closeTo(x, 6)));
    expect(seen).toEqual([g1[0], 2 * g1[0]!].map((x) => expect.closeTo(x, 5)));
  });

  it("retains non-leaf gradients on request, detaches, and records nothing under noGrad", () => {
    const x = rand([2]);
    x.requiresGrad = true;
    const y = x.mul(3).retainGrad();
    y.sum().backward();
    expect(y.grad!.toArray()).toEqual([1, 1]);
    expect(x.grad!.toArray()).toEqual([3, 3]);
    expect(y.detach().requiresGrad).toBe(false);
    expect(noGrad(() => x.mul(2)).requiresGrad).toBe(false);
    expect(() => y.sum().backward()).toThrow(/second time/);
  });

  it("hands back the gradients it is done with for reuse, never one still held, and reuse changes no bit", () => {
    // x -> linear(w1) -> Spy -> reshape -> linear(w2) -> cross entropy; Spy's incoming gradient is
    // linear(w2)'s fresh dx, which no one holds once linear(w1)'s backward has used it
    const seen: Tensor[] = [];
    const Spy = defineFunction({
      name: "Spy",
      forward: (_ctx, t: Tensor) => t,
      backward: (_ctx, g) => (seen.push(g), [g]),
    });
    const [x, w1, w2] = [rand([2, 3, 8]), rand([16, 8]), rand([40, 16])];
    for (const p of [x, w1, w2]) p.requiresGrad = true;
    const targets = ids([6], 40);
    const run = () => {
      for (const p of [x, w1, w2]) p.grad = null;
      const h = Spy(F.linear(x, w1)).retainGrad(); // [2, 3, 16]
      F.cross_entropy(F.linear(h.reshape(6, 16), w2), targets).backward();
      return [x, w1, w2, h].map((t) => t.grad!);
    };
    const first = run().map((g) => g.clone());
    const held = run();
    const dh = seen[1]!.storage;
    const taken = Array.from({ length: 8 }, () => uninitialized(dh.length));
    expect(taken).toContain(dh); // linear(w2)'s dx came back
    // the leaves' gradients and the retained one (a copy) are never handed back
    for (const g of held) {
      const again = Array.from({ length: 8 }, () => uninitialized(g.numel));
      expect(again.some((a) => a.buffer === g.storage.buffer)).toBe(false);
    }
    held.forEach((g, i) => expect(g.toArray()).toEqual(first[i]!.toArray()));
  });
});
