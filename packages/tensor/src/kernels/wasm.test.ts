import { describe, expect, it } from "vitest";
import { rmsNormBackwardWasm, rmsNormForwardWasm } from "./wasm_rmsnorm.ts";
import { blasOrReason } from "./blas.ts";

describe("WebAssembly RMSNorm", () => {
  it("matches float64 over several chunks of rows, and accumulates into dw", () => {
    const [rows, h, eps] = [70, 576, 1e-5]; // 28 rows per chunk: 3 chunks, the last one partial
    const x = Float32Array.from({ length: rows * h }, (_, i) => Math.sin(i * 0.37) * 2 + 0.1);
    const w = Float32Array.from({ length: h }, (_, i) => 1 + Math.cos(i) * 0.3);
    const dy = Float32Array.from({ length: rows * h }, (_, i) => Math.sin(i * 0.013));
    const [y, dx] = [new Float32Array(rows * h), new Float32Array(rows * h)];
    const inv = new Float64Array(rows);
    const dw = new Float64Array(h).fill(0.5); // accumulates on top of what is there
    rmsNormForwardWasm(x, w, eps, y, inv);
    rmsNormBackwardWasm(x, w, inv, dy, dx, dw);
    const dwRef = new Float64Array(h).fill(0.5);
    for (let r = 0; r < rows; r++) {
      const o = r * h;
      let ss = 0;
      for (let j = 0; j < h; j++) ss += x[o + j]! ** 2;
      const rstd = 1 / Math.sqrt(ss / h + eps);
      expect(inv[r]).toBeCloseTo(rstd, 12);
      let dot = 0;
      for (let j = 0; j < h; j++) {
        dwRef[j] += dy[o + j]! * x[o + j]! * rstd;
        dot += w[j]! * dy[o + j]! * x[o + j]! * rstd;
      }
      for (let j = 0; j < h; j++) {
        const yRef = w[j]! * x[o + j]! * rstd;
        const dxRef = rstd * (w[j]! * dy[o + j]! - x[o + j]! * rstd * (dot / h));
        expect(Math.abs(y[o + j]! - yRef)).toBeLessThan(1e-6 * Math.max(1, Math.abs(yRef)));
        expect(Math.abs(dx[o + j]! - dxRef)).toBeLessThan(1e-6 * Math.max(1, Math.abs(dxRef)));
      }
    }
    for (let j = 0; j < h; j++) expect(dw[j]).toBeCloseTo(dwRef[j]!, 9);
  });

  const { blas, reason } = blasOrReason();
  it.skipIf(!blas)(
    `gives the same bits as the native kernels on any number of threads${blas ? "" : ` (skipped: ${reason})`}`,
    () => {
      const [rows, h, eps] = [1000, 576, 1e-5]; // several threads' worth of rows
      const x = Float32Array.from({ length: rows * h }, (_, i) => Math.sin(i * 0.37) * 2 + 0.1);
      const w = Float32Array.from({ length: h }, (_, i) => 1 + Math.cos(i) * 0.3);
      const dy = Float32Array.from({ length: rows * h }, (_, i) => Math.sin(i * 0.013));
      const run = (threads: number | null) => {
        const [y, dx, inv] = [new Float32Array(rows * h), new Float32Array(rows * h), new Float64Array(rows)];
        const dw = new Float64Array(h).fill(0.5);
        if (threads === null) {
          rmsNormForwardWasm(x, w, eps, y, inv);
          rmsNormBackwardWasm(x, w, inv, dy, dx, dw);
        } else {
          blas!.rmsnormForward(x, w, eps, y, inv, threads);
          blas!.rmsnormBackward(x, w, inv, dy, dx, dw, threads);
        }
        return [y, dx, inv, dw].map((a) => Buffer.from(a.buffer));
      };
      const wasm = run(null);
      for (const threads of [1, 2, 3]) run(threads).forEach((b, i) => expect(b.equals(wasm[i]!)).toBe(true));
      expect(() => blas!.rmsnormForward(x, w.subarray(1), eps, x, new Float64Array(rows), 1)).toThrow(
        "rmsnorm: w's length must be a multiple of 4 dividing x's",
      );
      expect(() => blas!.rmsnormForward(x, w, eps, x, new Float32Array(rows) as never, 1)).toThrow(
        "rmsnorm: inv must be a Float64Array",
      );
      expect(() => blas!.rmsnormForward(x, w, eps, x, new Float64Array(rows), 0)).toThrow(
        "rmsnorm: threads must be a positive integer",
      );
    },
  );
});
