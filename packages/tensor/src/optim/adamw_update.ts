// AdamW's per-element update as a WebAssembly SIMD loop, in float32 like PyTorch's. The same loop in TS
// spends its time on one float64 sqrt and one division per element (4.4 ns per element measured on one
// core, against 2.0 ns here, copies included): for the 70M parameters of the bench model, AdamW.step took
// 0.40-0.45 s in TS and takes 0.15-0.20 s here. Arrays are processed in chunks staged in the module's
// memory (small enough to stay in L2 cache).
import { compileKernel, ins, F32, I32, V128, type WasmKernel } from "../kernels/wasm.ts";

const CHUNK = 16384; // elements per array per call: 4 arrays x 64 KiB
const W = 0; // byte offsets of the four staged arrays
const G = CHUNK * 4;
const M = CHUNK * 8;
const V = CHUNK * 12;

type UpdateFn = (
  bytes: number,
  b1: number,
  c1: number,
  b2: number,
  c2: number,
  invBc2Sqrt: number,
  eps: number,
  stepSize: number,
  decay: number,
) => void;

let kernel: WasmKernel<UpdateFn> | null = null;

// Indices of the function's parameters and locals.
const BYTES = 0; // parameter 0: bytes per array to process; parameters 1..8: the floats of UpdateFn
const [B1, C1, B2, C2, INV_BC2_SQRT, EPS, STEP_SIZE, DECAY] = [0, 1, 2, 3, 4, 5, 6, 7];
const I = 9; // the byte index
const LANES = 10; // locals 10..17: each float parameter splat to 4 lanes
const G_ = 18; // the current 4 lanes of g, the new m and the new v
const M_ = 19;
const V_ = 20;

/**
 * for (i = 0; i < bytes; i += 16)   (4 lanes at a time)
 *   m = b1 m + c1 g;   v = b2 v + c2 g g;   w = w decay - stepSize (m / (sqrt(v) invBc2Sqrt + eps))
 */
function build(): WasmKernel<UpdateFn> {
  const get = ins.localGet;
  const lane = (k: number) => get(LANES + k);
  const at = (offset: number) => [...get(I), ...ins.v128Load(offset)];
  const body = [
    ...[B1, C1, B2, C2, INV_BC2_SQRT, EPS, STEP_SIZE, DECAY].map((k) => [
      ...get(1 + k),
      ...ins.f32x4Splat,
      ...ins.localSet(LANES + k),
    ]),
    ins.block,
    ins.loop,
    [...get(I), ...get(BYTES), ...ins.i32GeU, ...ins.brIf(1)],
    [...at(G), ...ins.localSet(G_)],
    // m = b1 m + c1 g
    [...get(I), ...at(M), ...lane(B1), ...ins.f32x4Mul, ...get(G_), ...lane(C1), ...ins.f32x4Mul],
    [...ins.f32x4Add, ...ins.localTee(M_), ...ins.v128Store(M)],
    // v = b2 v + c2 g g
    [...get(I), ...at(V), ...lane(B2), ...ins.f32x4Mul, ...get(G_), ...get(G_), ...ins.f32x4Mul],
    [...lane(C2), ...ins.f32x4Mul, ...ins.f32x4Add, ...ins.localTee(V_), ...ins.v128Store(V)],
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
  return compileKernel<UpdateFn>([I32, ...floats], locals, body, CHUNK * 16);
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

/** One AdamW step on weights w with gradient g and moments m, v (all updated in place but g). */
export function adamwUpdate(
  w: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamWScalars,
): void {
  kernel ??= build();
  const { memory, fn } = kernel;
  const stage = (offset: number) => memory.subarray(offset / 4, offset / 4 + CHUNK);
  const [sw, sg, sm, sv] = [stage(W), stage(G), stage(M), stage(V)];
  for (let start = 0; start < w.length; start += CHUNK) {
    const n = Math.min(CHUNK, w.length - start);
    const end = start + n;
    sw.set(w.subarray(start, end));
    sg.set(g.subarray(start, end));
    sm.set(m.subarray(start, end));
    sv.set(v.subarray(start, end));
    // whole 4-lane groups: the lanes past n hold stale values whose results are not copied back
    fn(Math.ceil(n / 4) * 16, s.b1, 1 - s.b1, s.b2, 1 - s.b2, 1 / s.bc2Sqrt, s.eps, s.stepSize, s.decay);
    w.set(sw.subarray(0, n), start);
    m.set(sm.subarray(0, n), start);
    v.set(sv.subarray(0, n), start);
  }
}
