// AdamW's per-element update, in float32 like PyTorch's: on every thread in the native addon beside OpenBLAS
// (@picotron/blas-napi) when it is built, else as the WebAssembly SIMD loop below (one thread). Both do
// the same float32 operations in the same order, so they give the same bits. The same loop in TS
// spends its time on one float64 sqrt and one division per element (4.4 ns per element measured on one
// core): for the 70M parameters of the bench model, AdamW.step took 0.40-0.45 s in TS. The moments m and v
// live in the module's own memory for good (one module per parameter), so each step copies only the
// weights in and out and the gradient in, chunk by chunk (staged chunks stay in L2 cache): copying m and v
// in and out as well took more time than the update itself.
import { compileKernel, ins, F32, I32, V128, type WasmKernel } from "../kernels/wasm.ts";
import { blasOrReason, type Blas } from "../kernels/blas.ts";
import { getNumThreads } from "../kernels/ort.ts";

const CHUNK = 16384; // elements of w and g staged per call: 2 x 64 KiB
const W = 0; // byte offsets: the staged w and g, then m and v for the whole parameter
const G = CHUNK * 4;
const M = CHUNK * 8;

type UpdateFn = (
  bytes: number,
  at: number,
  b1: number,
  c1: number,
  b2: number,
  c2: number,
  invBc2Sqrt: number,
  eps: number,
  stepSize: number,
  decay: number,
) => void;

// Indices of the function's parameters and locals.
const BYTES = 0; // parameter 0: bytes per array to process; 1: the chunk's byte offset in m and v
const AT = 1;
const FLOATS = 2; // parameters 2..9: the floats of UpdateFn
const [B1, C1, B2, C2, INV_BC2_SQRT, EPS, STEP_SIZE, DECAY] = [0, 1, 2, 3, 4, 5, 6, 7];
const I = 10; // the byte index
const LANES = 11; // locals 11..18: each float parameter splat to 4 lanes
const G_ = 19; // the current 4 lanes of g, the new m and the new v
const M_ = 20;
const V_ = 21;

/**
 * for (i = 0; i < bytes; i += 16)   (4 lanes at a time; m and v at byte at + i of their arrays)
 *   m = b1 m + c1 g;   v = b2 v + c2 g g;   w = w decay - stepSize (m / (sqrt(v) invBc2Sqrt + eps))
 */
function build(v: number, memoryBytes: number): WasmKernel<UpdateFn> {
  const get = ins.localGet;
  const lane = (k: number) => get(LANES + k);
  const at = (offset: number) => [...get(I), ...ins.v128Load(offset)];
  const moment = (offset: number) => [...get(I), ...get(AT), ...ins.i32Add, ...ins.v128Load(offset)];
  const momentAddr = [...get(I), ...get(AT), ...ins.i32Add];
  const body = [
    ...[B1, C1, B2, C2, INV_BC2_SQRT, EPS, STEP_SIZE, DECAY].map((k) => [
      ...get(FLOATS + k),
      ...ins.f32x4Splat,
      ...ins.localSet(LANES + k),
    ]),
    ins.block,
    ins.loop,
    [...get(I), ...get(BYTES), ...ins.i32GeU, ...ins.brIf(1)],
    [...at(G), ...ins.localSet(G_)],
    // m = b1 m + c1 g
    [...momentAddr, ...moment(M), ...lane(B1), ...ins.f32x4Mul, ...get(G_), ...lane(C1), ...ins.f32x4Mul],
    [...ins.f32x4Add, ...ins.localTee(M_), ...ins.v128Store(M)],
    // v = b2 v + c2 g g
    [...momentAddr, ...moment(v), ...lane(B2), ...ins.f32x4Mul, ...get(G_), ...get(G_), ...ins.f32x4Mul],
    [...lane(C2), ...ins.f32x4Mul, ...ins.f32x4Add, ...ins.localTee(V_), ...ins.v128Store(v)],
    // w = w decay - stepSize (m / (sqrt(v) invBc2Sqrt + eps))
    [...get(I), ...at(W), ...lane(DECAY), ...ins.f32x4Mul, ...lane(STEP_SIZE), ...get(M_)],
    [...get(V_), ...ins.f32x4Sqrt, ...lane(INV_BC2_SQRT), ...ins.f32x4Mul, ...lane(EPS), ...ins.f32x4Add],
    [...ins.f32x4Div, ...ins.f32x4Mul, ...ins.f32x4Sub, ...ins.v128Store(W)],
    [...get(I), ...ins.i32Const(16), ...ins.i32Add, ...ins.localSet(I), ...ins.br(0)],
    ins.end,
    ins.end,
  ];
  const floats = Array<number>(8).fill(F32);
  const locals = [I32, ...Array<number>(8).fill(V128), V128, V128, V128];
  return compileKernel<UpdateFn>([I32, I32, ...floats], locals, body, memoryBytes);
}

export interface AdamWScalars {
  b1: number;
  b2: number;
  /** lr / (1 - b1^t) */
  stepSize: number;
  /** sqrt(1 - b2^t) */
  bc2Sqrt: number;
  /** 1 - lr * weight_decay */
  decay: number;
  eps: number;
}

/** One parameter's AdamW state (its moments, zeros at first) and its update. */
export interface AdamWSlot {
  /** The first moment, m. */
  readonly expAvg: Float32Array;
  /** The second moment, v. */
  readonly expAvgSq: Float32Array;
  /** One AdamW step on weights w (updated in place) with gradient g. */
  update(w: Float32Array, g: Float32Array, s: AdamWScalars): void;
}

/**
 * A parameter's slot: native (every thread; moments in plain arrays) when the addon is built, else
 * WebAssembly. `impl` forces one (the tests compare them).
 */
export function adamwSlot(numel: number, impl: "auto" | "native" | "wasm" = "auto"): AdamWSlot {
  const native = impl === "wasm" ? null : blasOrReason().blas;
  if (impl === "native" && !native)
    throw new Error(`AdamW: native update requested, but ${blasOrReason().reason}`);
  return native ? new NativeSlot(numel, native.adamw) : new WasmSlot(numel);
}

function checkLengths(numel: number, w: Float32Array, g: Float32Array): void {
  if (w.length !== numel || g.length !== numel) {
    throw new RangeError(`AdamW: expected ${numel} weights and gradients, got ${w.length} and ${g.length}`);
  }
}

class NativeSlot implements AdamWSlot {
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;

  constructor(
    readonly numel: number,
    private readonly adamw: Blas["adamw"],
  ) {
    this.expAvg = new Float32Array(numel);
    this.expAvgSq = new Float32Array(numel);
  }

  update(w: Float32Array, g: Float32Array, s: AdamWScalars): void {
    checkLengths(this.numel, w, g);
    const [m, v] = [this.expAvg, this.expAvgSq];
    this.adamw(
      w,
      g,
      m,
      v,
      s.b1,
      1 - s.b1,
      s.b2,
      1 - s.b2,
      1 / s.bc2Sqrt,
      s.eps,
      s.stepSize,
      s.decay,
      getNumThreads(),
    );
  }
}

class WasmSlot implements AdamWSlot {
  private readonly kernel: WasmKernel<UpdateFn>;
  readonly expAvg: Float32Array; // views of the module's memory
  readonly expAvgSq: Float32Array;

  constructor(readonly numel: number) {
    const padded = Math.ceil(numel / 4) * 4; // whole 4-lane groups, so the last chunk's lanes fit
    const v = M + padded * 4;
    if (v + padded * 4 > 2 ** 32 - 65536) {
      throw new RangeError(
        `AdamW: a parameter of ${numel} elements does not fit a WebAssembly memory (4 GiB)`,
      );
    }
    this.kernel = build(v, v + padded * 4);
    this.expAvg = this.kernel.memory.subarray(M / 4, M / 4 + numel);
    this.expAvgSq = this.kernel.memory.subarray(v / 4, v / 4 + numel);
  }

  update(w: Float32Array, g: Float32Array, s: AdamWScalars): void {
    checkLengths(this.numel, w, g);
    const { memory, fn } = this.kernel;
    const sw = memory.subarray(W / 4, W / 4 + CHUNK);
    const sg = memory.subarray(G / 4, G / 4 + CHUNK);
    for (let start = 0; start < w.length; start += CHUNK) {
      const n = Math.min(CHUNK, w.length - start);
      const end = start + n;
      sw.set(w.subarray(start, end));
      sg.set(g.subarray(start, end));
      // whole 4-lane groups: the lanes past n hold stale values whose results are not copied back
      const [b1, b2] = [s.b1, s.b2];
      fn(Math.ceil(n / 4) * 16, start * 4, b1, 1 - b1, b2, 1 - b2, 1 / s.bc2Sqrt, s.eps, s.stepSize, s.decay);
      w.set(sw.subarray(0, n), start);
    }
  }
}
