// The system's BLAS as a second GEMM: OpenBLAS's cblas_sgemm through a small addon (native/addon.cc,
// built into build/Release/blas_napi.node by `pnpm install` when libopenblas-dev is installed), and beside
// it memory-bound loops on every thread: AdamW's update (native/adamw.cc), RMSNorm (native/rmsnorm.cc),
// RoPE (native/rope.cc), cross-entropy with its gradient (native/cross_entropy.cc), causal attention
// (native/attention.cc), SwiGLU (native/swiglu.cc) and addition (native/add.cc).
// Optional: loadBlas() returns null, with the reason, when the addon was not built.
import { createRequire } from "node:module";

export interface Blas {
  /**
   * C[m, n] = op(A) op(B) + beta C, row-major (op(A) is [m, k]: A is [k, m] when transA; op(B) is
   * [k, n]: B is [n, k] when transB). lda/ldb/ldc are the stored matrices' row lengths.
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** The kernel family OpenBLAS picked when it loaded, e.g. "SkylakeX" or "Haswell". */
  coreName(): string;
  /** OpenBLAS's build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64". */
  config(): string;
  /**
   * One AdamW step in place on `threads` threads, in float32 (the scalars are rounded to float32):
   *   m = b1 m + c1 g;   v = b2 v + c2 g g;   w = w decay - stepSize (m / (sqrt(v) invBc2Sqrt + eps))
   */
  adamw(
    w: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    invBc2Sqrt: number,
    eps: number,
    stepSize: number,
    decay: number,
    threads: number,
  ): void;
  /**
   * RoPE on `threads` threads: out = x*cos + sign * cat(-x2, x1)*sin for x: [batch, seq, heads, d] and
   * cos, sin: [seq, d], each output computed in float64 and rounded once (sign -1: the backward).
   */
  rope(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    sign: 1 | -1,
    seq: number,
    heads: number,
    d: number,
    out: Float32Array,
    threads: number,
  ): void;
  /**
   * RMSNorm over rows of x: [rows, h] (h a multiple of 4) on `threads` threads: inv_r = 1 / sqrt(mean_j
   * x_rj^2 + eps) in float64 (saved for the backward), y_rj = (w_j x_rj) inv_r in float32.
   */
  rmsnormForward(
    x: Float32Array,
    w: Float32Array,
    eps: number,
    y: Float32Array,
    inv: Float64Array,
    threads: number,
  ): void;
  /** RMSNorm's backward: dx, and dw accumulated (float64, rows in order) into dw. */
  rmsnormBackward(
    x: Float32Array,
    w: Float32Array,
    inv: Float64Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float64Array,
    threads: number,
  ): void;
  /**
   * Cross-entropy's forward and gradient over logits [n, vocab] on `threads` threads: for each row whose
   * target is not ignoreIndex, losses[row] = log(sum_j exp(x_j)) - x_target (float64) and grad =
   * softmax(x) * scale - scale at the target; ignored rows get loss 0 and a zero gradient.
   */
  crossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    ignoreIndex: number,
    scale: number,
    grad: Float32Array,
    losses: Float64Array,
    threads: number,
  ): void;
  /**
   * Causal attention with grouped-query heads on `threads` threads: q [batch, seq, heads, headDim]; k, v
   * [batch, seq, kvHeads, headDim]; out like q; probs [batch, heads, seq, seq] gets softmax(q k^T /
   * sqrt(headDim)) on and below the diagonal (the part above is left as it was, and never read).
   */
  attentionForward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    batch: number,
    seq: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    out: Float32Array,
    probs: Float32Array,
    threads: number,
  ): void;
  /** Its backward: dq, dk, dv from the forward's inputs, its probs and dout (shaped like q). */
  attentionBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    probs: Float32Array,
    dout: Float32Array,
    batch: number,
    seq: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    threads: number,
  ): void;
  /** out = a + b elementwise on `threads` threads (float32: the same bits as any other addition). */
  add(a: Float32Array, b: Float32Array, out: Float32Array, threads: number): void;
  /** SwiGLU on `threads` threads: out = silu(gate) * up, elementwise (float32, as (gate * sigmoid(gate)) * up). */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, threads: number): void;
  /** Its backward: dGate = dy * up * s * (1 + gate * (1 - s)) and dUp = dy * s * gate, s = sigmoid(gate). */
  swigluBackward(
    gate: Float32Array,
    up: Float32Array,
    dy: Float32Array,
    dGate: Float32Array,
    dUp: Float32Array,
    threads: number,
  ): void;
}

export type BlasLoad = { blas: Blas; reason: null } | { blas: null; reason: string };

let loaded: BlasLoad | null = null;

// After each product, OpenBLAS's idle worker threads spin, waiting for the next one, for up to
// 2^OPENBLAS_THREAD_TIMEOUT cycles (2^28 by default: about 0.1 s). Between products that spinning takes the
// core from onnxruntime's kernels, whose own idle threads sleep. 4 (2^4 cycles, the least OpenBLAS takes)
// puts them to sleep at once; waking them costs microseconds against a product's milliseconds. On the
// bench step with 2 threads it measured 12% faster (and PyTorch, on the same OpenBLAS, 18%).
const THREAD_TIMEOUT = "4";

/** The OPENBLAS_THREAD_TIMEOUT our OpenBLAS runs with: the environment's, else 4. */
export function blasThreadTimeout(): string {
  return process.env.OPENBLAS_THREAD_TIMEOUT ?? THREAD_TIMEOUT;
}

/** The addon, loaded once (OpenBLAS reads OPENBLAS_CORETYPE and the like at this moment). */
export function loadBlas(): BlasLoad {
  if (loaded) return loaded;
  process.env.OPENBLAS_THREAD_TIMEOUT = blasThreadTimeout(); // read once, as the library loads
  const require = createRequire(import.meta.url);
  try {
    loaded = { blas: require("../build/Release/blas_napi.node") as Blas, reason: null };
  } catch {
    loaded = {
      blas: null,
      reason: "the OpenBLAS addon is not built (apt-get install libopenblas-dev pkg-config; pnpm install)",
    };
  }
  return loaded;
}
