// The CPU's peak matrix throughput, measured: MFU (model FLOPs utilization) needs a peak, and a CPU has no
// datasheet number we can trust inside a VM. A large square product on the GEMM backend in use (in auto
// mode the faster of MLAS and OpenBLAS for that shape) is the best this machine does on one rank's threads.
import { Generator } from "./random.ts";
import { gemm } from "./ops/matmul.ts";
import { getNumThreads } from "./kernels/ort.ts";
import { getGemmBackend } from "./kernels/gemm.ts";

const cache = new Map<string, number>();

/**
 * FLOP/s of a 1024^3 MatMul (best of 5) with the current kernel thread count and GEMM backend, measured once
 * per process (`remeasure`: again, keeping the best: a VM's speed drifts, and a peak must not be a slow moment).
 */
export function measurePeakFlops(n = 1024, { remeasure = false } = {}): number {
  const key = `${n}|${getNumThreads()}|${getGemmBackend()}`;
  const cached = cache.get(key);
  if (cached && !remeasure) return cached;
  const gen = new Generator(0, "peak");
  const a = Float32Array.from({ length: n * n }, () => gen.random());
  const b = Float32Array.from({ length: n * n }, () => gen.random());
  gemm(a, b, n, n, n, false, false); // compile the kernel
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    gemm(a, b, n, n, n, false, false);
    best = Math.min(best, performance.now() - t);
  }
  const flops = Math.max((2 * n ** 3) / (best / 1e3), cached ?? 0);
  cache.set(key, flops);
  return flops;
}
