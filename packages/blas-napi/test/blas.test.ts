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
});
