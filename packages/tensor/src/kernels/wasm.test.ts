import { describe, expect, it } from "vitest";
import { swigluBackwardInto, swigluForwardInto } from "./wasm_swiglu.ts";

describe("WebAssembly SwiGLU (and its SIMD exp)", () => {
  it("matches float64 over chunk boundaries, a ragged tail and exp's clamped range", () => {
    const n = 4096 * 2 + 7;
    const a = Float32Array.from({ length: n }, (_, i) =>
      i < 8 ? [-120, -90, -30, 0, 1e-8, 30, 90, 120][i]! : Math.sin(i) * 12,
    );
    const u = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3) * 2);
    const dy = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.07));
    const [y, da, du] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    swigluForwardInto(a, u, y);
    swigluBackwardInto(a, u, dy, da, du);
    for (let i = 0; i < n; i++) {
      const x = a[i]!;
      const s = 1 / (1 + Math.exp(-x));
      const close = (got: number, want: number) =>
        expect(Math.abs(got - want), `element ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
      close(y[i]!, x * s * u[i]!);
      close(du[i]!, dy[i]! * x * s);
      close(da[i]!, dy[i]! * u[i]! * s * (1 + x * (1 - s)));
    }
  });
});
