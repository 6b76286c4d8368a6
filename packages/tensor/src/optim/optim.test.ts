import { describe, expect, it } from "vitest";
import { optim, nn, Tensor, tensor } from "../index.ts";
import { blasOrReason } from "../kernels/blas.ts";
import { setNumThreads, getNumThreads } from "../kernels/ort.ts";
import { adamwSlot } from "./adamw_update.ts";

function param(values: number[]): nn.Parameter {
  const p = new nn.Parameter([values.length]);
  p.storage.set(values);
  return p;
}

describe("AdamW", () => {
  it("matches a hand-computed update (PyTorch's formula) over two steps", () => {
    const p = param([1, -2]);
    const opt = new optim.AdamW([p], { lr: 0.1, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    const grads = [
      [0.5, -1],
      [0.25, 2],
    ];
    // reference, written out: decay, moments, bias corrections
    const w = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    for (let t = 1; t <= 2; t++) {
      p.grad = tensor(grads[t - 1]!);
      opt.step();
      for (let i = 0; i < 2; i++) {
        const g = grads[t - 1]![i]!;
        w[i] = w[i]! * (1 - 0.1 * 0.1);
        m[i] = 0.9 * m[i]! + 0.1 * g;
        v[i] = 0.99 * v[i]! + 0.01 * g * g;
        const mhat = m[i]! / (1 - 0.9 ** t);
        const vhat = v[i]! / (1 - 0.99 ** t);
        w[i] = w[i]! - (0.1 * mhat) / (Math.sqrt(vhat) + 1e-8);
      }
      expect(p.toArray()[0]).toBeCloseTo(w[0]!, 6);
      expect(p.toArray()[1]).toBeCloseTo(w[1]!, 6);
    }
    // the first step moves each weight by about lr (sign of the gradient), the Adam signature
    expect(opt.stepCount).toBe(2);
  });

  it("updates long parameters the same way: several SIMD chunks and a partial group of lanes", () => {
    const n = 2 * 16384 + 7;
    const values = Array.from({ length: n }, (_, i) => Math.sin(i));
    const grads = Array.from({ length: n }, (_, i) => Math.cos(3 * i));
    const p = param(values);
    const opt = new optim.AdamW([p], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    p.grad = tensor(grads);
    opt.step();
    // first step: m = 0.1 g, v = 0.01 g^2, mhat = g, vhat = g^2
    const got = p.toArray();
    let maxErr = 0;
    for (let i = 0; i < n; i++) {
      const g = Math.fround(grads[i]!);
      const w = Math.fround(values[i]!) * (1 - 0.01 * 0.1) - (0.01 * g) / (Math.abs(g) + 1e-8);
      maxErr = Math.max(maxErr, Math.abs(got[i]! - w));
    }
    expect(maxErr).toBeLessThan(1e-6);
  });

  it("skips parameters without a gradient and round-trips its state", () => {
    const a = param([1]);
    const b = param([1]);
    const opt = new optim.AdamW([a, b], { lr: 0.1 });
    a.grad = tensor([1]);
    opt.step();
    expect(b.toArray()).toEqual([1]);
    expect(a.toArray()[0]).toBeLessThan(1);
    const other = new optim.AdamW([param([0]), param([0])]);
    other.loadStateDict(opt.stateDict());
    expect(other.stepCount).toBe(1);
    expect(other.stateDict().tensors["state.0.exp_avg"]!.toArray()[0]).toBeCloseTo(0.1, 6);
    expect(() => new optim.AdamW([param([0])]).loadStateDict(opt.stateDict())).toThrow(
      /4 state tensors for 1 parameters/,
    );
    expect(() => new optim.AdamW([param([0, 0]), param([0])]).loadStateDict(opt.stateDict())).toThrow(
      /state.0.exp_avg/,
    );
  });

  it("zeroGrad sets gradients to null, or zeroes them in place", () => {
    const p = param([1, 2]);
    const opt = new optim.AdamW([p]);
    p.grad = tensor([3, 4]);
    const buf = p.grad;
    opt.zeroGrad(false);
    expect(p.grad).toBe(buf);
    expect(buf.toArray()).toEqual([0, 0]);
    opt.zeroGrad();
    expect(p.grad).toBeNull();
  });

  it.skipIf(!blasOrReason().blas)(
    `gives the same bits natively (on every thread) as in WebAssembly${blasOrReason().blas ? "" : ` (skipped: ${blasOrReason().reason})`}`,
    () => {
      const n = 600_003; // several threads' worth, and not a whole number of 4-lane groups
      const wNative = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
      const wWasm = new Float32Array(wNative);
      const [native, wasm] = [adamwSlot(n, "native"), adamwSlot(n, "wasm")];
      const saved = getNumThreads();
      setNumThreads(2);
      try {
        for (let t = 1; t <= 3; t++) {
          const g = Float32Array.from({ length: n }, (_, i) => Math.cos(t * i) * 10 ** -(i % 6));
          const s = {
            b1: 0.9,
            b2: 0.999,
            stepSize: 1e-3 / (1 - 0.9 ** t),
            bc2Sqrt: Math.sqrt(1 - 0.999 ** t),
            decay: 0.9999,
            eps: 1e-8,
          };
          native.update(wNative, g, s);
          wasm.update(wWasm, g, s);
        }
      } finally {
        setNumThreads(saved);
      }
      const same = (a: Float32Array, b: Float32Array) =>
        Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
          Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        );
      expect(same(wNative, wWasm)).toBe(true);
      expect(same(native.expAvg, wasm.expAvg)).toBe(true);
      expect(same(native.expAvgSq, wasm.expAvgSq)).toBe(true);
      expect(wNative[12]).not.toBe(Math.fround(Math.sin(12))); // the weights did move
    },
  );

  it("rejects bad hyper-parameters", () => {
    expect(() => new optim.AdamW([], { lr: -1 })).toThrow(/learning rate/);
    expect(() => new optim.AdamW([], { betas: [1, 0.9] })).toThrow(/betas/);
  });
});

describe("clipGradNorm", () => {
  it("scales gradients to the max norm and returns the norm before", () => {
    const p = param([0, 0]);
    p.grad = new Tensor(new Float32Array([3, 4]), [2]);
    expect(optim.clipGradNorm([p], 1)).toBeCloseTo(5, 6);
    expect(p.grad.toArray()[0]).toBeCloseTo(0.6, 5);
    expect(p.grad.toArray()[1]).toBeCloseTo(0.8, 5);
    expect(optim.clipGradNorm([p], 10)).toBeCloseTo(1, 4); // under the max: unchanged
    expect(p.grad.toArray()[0]).toBeCloseTo(0.6, 5);
  });
});

describe("LR schedules", () => {
  it("warms up linearly, then decays along a cosine to the minimum", () => {
    const s = optim.warmupCosineLR(1, 4, 12, 0.1);
    expect([0, 1, 2, 3].map((i) => s.lrAt(i))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(s.lrAt(4)).toBeCloseTo(1, 9);
    expect(s.lrAt(8)).toBeCloseTo(0.55, 9);
    expect(s.lrAt(12)).toBeCloseTo(0.1, 9);
    expect(s.lrAt(100)).toBeCloseTo(0.1, 9);
    expect(optim.constantLR(0.3).lrAt(7)).toBe(0.3);
    expect(() => optim.warmupCosineLR(1, 5, 4)).toThrow(/warmup/);
  });
});
