import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { F, Tensor, gradcheck } from "../index.ts";
import { blasAvailable } from "./blas.ts";
import {
  chooseBackend,
  measureChoice,
  gemmBackendSummary,
  gemmChoices,
  gemmInto,
  getGemmBackend,
  remeasureGemmChoices,
  setGemmBackend,
} from "./gemm.ts";
import { storedOrMeasured, storePath, type GemmChoice } from "./gemm_store.ts";

// Choices measured here go to a scratch store, not the user's.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gemm-store-"));
process.env.PICOTRON_CACHE_DIR = dir;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rand(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 131 + i * 0.37));
}

/** op(A) op(B) in float64. */
function reference(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  ta: boolean,
  tb: boolean,
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

const modes = blasAvailable() ? ["ort", "blas", "auto"] : ["ort", "auto"];

describe("GEMM backends", () => {
  it.each(modes)("%s: every transpose pair matches a float64 product", (mode) => {
    setGemmBackend(mode);
    const [m, k, n] = [6, 5, 7];
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const a = rand(m * k, 1);
        const b = rand(k * n, 2);
        const out = new Float32Array(m * n);
        gemmInto(a, b, out, { m, k, n, transA, transB });
        const want = reference(a, b, m, k, n, transA, transB);
        for (let i = 0; i < out.length; i++) expect(Math.abs(out[i]! - want[i]!)).toBeLessThan(1e-5);
      }
    setGemmBackend("auto");
  });

  it.each(modes)("%s: linear's gradient check", (mode) => {
    setGemmBackend(mode);
    const x = new Tensor(rand(30, 3), [2, 3, 5]);
    const w = new Tensor(rand(20, 4), [4, 5]);
    expect(gradcheck((a, b) => F.linear(a, b), [x, w]).maxRelErr).toBeLessThan(2e-2);
    setGemmBackend("auto");
  });

  it("auto stores its choice per host and reuses it", () => {
    setGemmBackend("auto");
    const sig = { m: 9, k: 11, n: 13, transA: false, transB: true };
    gemmInto(rand(99, 5), rand(143, 6), new Float32Array(117), sig);
    const key = "9x11x13|NT";
    if (!blasAvailable()) {
      expect(gemmChoices().size).toBe(0); // MLAS only: nothing to choose
      return;
    }
    const choice = gemmChoices().get(key)!;
    expect(["ort", "blas"]).toContain(choice.backend);
    const stored = JSON.parse(fs.readFileSync(storePath(), "utf8")) as Record<
      string,
      Record<string, GemmChoice>
    >;
    expect(Object.values(stored).some((host) => host[key]?.backend === choice.backend)).toBe(true);
    expect(gemmBackendSummary()).toMatch(/^gemm auto \(per shape, measured once per host\): OpenBLAS/);
    remeasureGemmChoices(); // forgets them: stored and in this process
    expect(gemmChoices().size).toBe(0);
    const after = JSON.parse(fs.readFileSync(storePath(), "utf8")) as Record<
      string,
      Record<string, GemmChoice>
    >;
    expect(Object.values(after).some((host) => key in host)).toBe(false);
  });

  // seconds per call on each library: products measured before the one being chosen
  const t = (ortS: number, blasS: number) => ({ ortS, blasS });

  it("takes the faster library, and in a tie (within 10%) the one faster on the products so far", () => {
    expect(chooseBackend(1.0, 0.8, [t(1, 2), t(1, 2)])).toBe("blas"); // 25% faster: a clear win
    expect(chooseBackend(0.8, 1.0, [t(2, 1)])).toBe("ort");
    expect(chooseBackend(1.0, 0.93, [t(1, 1.2), t(1, 1.2), t(1.1, 1)])).toBe("ort"); // a tie: MLAS so far
    expect(chooseBackend(0.93, 1.0, [t(1.2, 1), t(1.2, 1), t(1, 1.1)])).toBe("blas");
    expect(chooseBackend(1.0, 0.98, [])).toBe("blas"); // a tie and nothing before: the faster
    expect(chooseBackend(0.98, 1.0, [t(1, 1.1), t(1.1, 1)])).toBe("ort");
  });

  it("weighs the products before a tie by their time, not their number", () => {
    // the q projection tied by a hair for MLAS, then the LM head (60x the time) tied for OpenBLAS by 8%:
    // counting choices, MLAS would have taken the LM head too; timed, OpenBLAS is faster on both together
    const q = t(4.12e-3, 4.15e-3);
    expect(chooseBackend(...([4.12e-3, 4.15e-3] as const), [])).toBe("ort");
    const lmHead: [number, number] = [0.315, 0.29];
    expect(chooseBackend(...lmHead, [q])).toBe("blas");
    // and the small products after it follow OpenBLAS in a tie, though MLAS is a little faster on them
    expect(chooseBackend(4.1e-3, 4.3e-3, [q, t(...lmHead)])).toBe("blas");
  });

  it("keeps a win against the faster library so far only if the median of three measurements confirms it", () => {
    const sequence = (...runs: [number, number][]) => {
      let i = 0;
      return { measure: (): [number, number] => runs[i++]!, count: () => i };
    };
    const blasSoFar = [t(1.2, 1), t(1.2, 1)];
    // OpenBLAS, faster so far, winning: one measurement is enough
    let m = sequence([1.0, 0.8]);
    expect(measureChoice(m.measure, blasSoFar).backend).toBe("blas");
    expect(m.count()).toBe(1);
    // MLAS 25% faster once, at a noisy moment, then slower twice: OpenBLAS stays
    m = sequence([0.8, 1.0], [1.3, 1.0], [1.2, 1.0]);
    expect(measureChoice(m.measure, blasSoFar)).toEqual({ backend: "blas", ortS: 1.2, blasS: 1.0 });
    expect(m.count()).toBe(3);
    // MLAS faster in every measurement: it wins
    m = sequence([0.8, 1.0], [0.7, 1.0], [0.75, 1.0]);
    expect(measureChoice(m.measure, [t(1.2, 1)]).backend).toBe("ort");
    // the first choice (nothing before it) is always measured three times
    m = sequence([1.0, 0.8], [1.0, 0.9], [1.0, 0.85]);
    expect(measureChoice(m.measure, []).backend).toBe("blas");
    expect(m.count()).toBe(3);
  });

  it("measures a signature once, then reads the stored answer", () => {
    let calls = 0;
    const measure = (): GemmChoice => {
      calls++;
      return { backend: "blas", ort_gflops: 1, blas_gflops: 2 };
    };
    expect(storedOrMeasured("test-host", "1x2x3|NN", measure).backend).toBe("blas");
    expect(storedOrMeasured("test-host", "1x2x3|NN", measure).backend).toBe("blas");
    expect(calls).toBe(1);
    expect(fs.existsSync(`${storePath()}.lock`)).toBe(false);
  });

  it("names the backend in one line, and refuses an unknown one", () => {
    setGemmBackend("ort");
    expect(getGemmBackend()).toBe("ort");
    expect(gemmBackendSummary()).toMatch(/^gemm ort: MLAS \(onnxruntime [\d.]+\); \d+ threads?$/);
    setGemmBackend("auto");
    expect(() => setGemmBackend("cuda")).toThrow('setGemmBackend: expected auto, ort or blas, got "cuda"');
  });
});
