// OpenBLAS's SGEMM (through @picotron/blas-napi), run with the same thread count as onnxruntime's kernels.
// OpenBLAS reads OPENBLAS_CORETYPE and the like once, when the addon loads: on first use, not on import.
import { blasThreadTimeout, loadBlas, type Blas } from "@picotron/blas-napi";
import { getNumThreads } from "./ort.ts";

export { blasThreadTimeout, type Blas };

let threadsSet = 0;

/** The addon, or null with the reason it is missing. */
export function blasOrReason(): { blas: Blas | null; reason: string | null } {
  return loadBlas();
}

export function blasAvailable(): boolean {
  return loadBlas().blas !== null;
}

/** "OpenBLAS 0.3.21 (SkylakeX)", or null without the addon. */
export function blasDescription(): string | null {
  const { blas } = loadBlas();
  if (!blas) return null;
  const version = /OpenBLAS\s+([\d.]+)/.exec(blas.config())?.[1] ?? "?";
  return `OpenBLAS ${version} (${blas.coreName()})`;
}

/**
 * out[m, n] = op(A) op(B) (+ out when accumulate), row-major; op(A) is [m, k] (A is [k, m] when transA),
 * op(B) is [k, n] (B is [n, k] when transB).
 */
export function blasGemm(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  [m, k, n]: readonly [number, number, number],
  transA: boolean,
  transB: boolean,
  accumulate = false,
): void {
  const { blas, reason } = loadBlas();
  if (!blas) throw new Error(`OpenBLAS GEMM requested, but ${reason}`);
  const threads = getNumThreads();
  if (threads !== threadsSet) {
    blas.setNumThreads(threads);
    threadsSet = threads;
  }
  blas.sgemm(transA, transB, m, n, k, a, transA ? m : k, b, transB ? k : n, accumulate ? 1 : 0, out, n);
}
