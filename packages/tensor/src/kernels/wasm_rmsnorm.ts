// RMSNorm's forward and backward in WebAssembly SIMD, for rows whose width is a multiple of 4. The
// statistics stay in float64 (f64x2 lanes), as in the TypeScript loops they replace; the elementwise
// products run on 4 float32 lanes. Rows are staged in the module's memory in chunks of about 64 KiB.
//   forward:  inv_r = 1 / sqrt(mean_j x_rj^2 + eps),   y_rj = w_j x_rj inv_r
//   backward: xhat = x inv;  dw_j += sum_r dy_rj xhat_rj;  c_r = mean_j(w_j dy_rj xhat_rj);
//             dx_rj = inv_r (w_j dy_rj - x_rj inv_r c_r)
// The sums of a row run on 2 f64 lanes (even and odd elements), then lane 0 + lane 1.
import { compileKernel, ins, F64, I32, V128, type WasmKernel } from "./wasm.ts";

type ForwardFn = (rows: number, eps: number) => void;
type BackwardFn = (rows: number) => void;

interface Layout {
  h: number;
  chunkRows: number;
  w: number; // byte offsets
  x: number;
  y: number; // forward: y; backward: dy
  dx: number;
  inv: number;
  dw: number;
  bytes: number;
}

function layout(h: number): Layout {
  const chunkRows = Math.max(1, Math.floor(16384 / h));
  const rowBytes = h * 4;
  const w = 0;
  const x = w + rowBytes + 16; // the second half of the last group reads 8 bytes past a row
  const y = x + chunkRows * rowBytes + 16;
  const dx = y + chunkRows * rowBytes + 16;
  const inv = dx + chunkRows * rowBytes + 16;
  const dw = Math.ceil((inv + chunkRows * 8 + 16) / 16) * 16;
  return { h, chunkRows, w, x, y, dx, inv, dw, bytes: dw + h * 8 + 32 };
}

// locals (after the parameters): i32 row, base, i; v128 acc, a, b; f64 inv, c
function locals(params: number) {
  const at = (k: number) => params + k;
  return { R: at(0), BASE: at(1), I: at(2), ACC: at(3), A: at(4), B: at(5), INV: at(6), C: at(7) };
}
const LOCAL_TYPES = [I32, I32, I32, V128, V128, V128, F64, F64];

/** for (v = 0; v < limit; v += step) { body }, `limit` an instruction sequence. */
function forLoop(v: number, limit: number[], step: number, body: number[]): number[] {
  return [
    ...[...ins.i32Const(0), ...ins.localSet(v), ...ins.block, ...ins.loop],
    ...[...ins.localGet(v), ...limit, ...ins.i32GeU, ...ins.brIf(1)],
    ...body,
    ...[...ins.localGet(v), ...ins.i32Const(step), ...ins.i32Add, ...ins.localSet(v), ...ins.br(0)],
    ...[...ins.end, ...ins.end],
  ];
}

function buildForward(L: Layout): WasmKernel<ForwardFn> {
  const { R, BASE, I, ACC, A, INV } = locals(2); // parameters: rows, eps
  const H = L.h * 4;
  const rowAddr = [...ins.localGet(BASE), ...ins.localGet(I), ...ins.i32Add];
  // acc += promote(x[half..half+2])^2
  const square = (half: number) => [
    ...[...ins.localGet(ACC), ...rowAddr, ...ins.v128Load(L.x + half), ...ins.f64x2PromoteLowF32x4],
    ...[...ins.localTee(A), ...ins.localGet(A), ...ins.f64x2Mul, ...ins.f64x2Add, ...ins.localSet(ACC)],
  ];
  const body = forLoop(R, ins.localGet(0), 1, [
    ...[...ins.localGet(R), ...ins.i32Const(H), ...ins.i32Mul, ...ins.localSet(BASE)],
    ...[...ins.v128ConstF32(0), ...ins.localSet(ACC)],
    ...forLoop(I, ins.i32Const(H), 16, [...square(0), ...square(8)]),
    // inv = 1 / sqrt((lane 0 + lane 1) / h + eps)
    ...[...ins.f64Const(1), ...ins.localGet(ACC), ...ins.f64x2ExtractLane(0), ...ins.localGet(ACC)],
    ...[...ins.f64x2ExtractLane(1), ...ins.f64Add, ...ins.f64Const(L.h), ...ins.f64Div, ...ins.localGet(1)],
    ...[...ins.f64Add, ...ins.f64Sqrt, ...ins.f64Div, ...ins.localSet(INV)],
    ...[...ins.localGet(R), ...ins.i32Const(3), ...ins.i32Shl, ...ins.localGet(INV), ...ins.f64Store(L.inv)],
    ...[...ins.localGet(INV), ...ins.f32DemoteF64, ...ins.f32x4Splat, ...ins.localSet(A)],
    // y = w x inv
    ...forLoop(I, ins.i32Const(H), 16, [
      ...[...rowAddr, ...ins.localGet(I), ...ins.v128Load(L.w), ...rowAddr, ...ins.v128Load(L.x)],
      ...[...ins.f32x4Mul, ...ins.localGet(A), ...ins.f32x4Mul, ...ins.v128Store(L.y)],
    ]),
  ]);
  return compileKernel<ForwardFn>([I32, F64], LOCAL_TYPES, [body], L.bytes);
}

function buildBackward(L: Layout): WasmKernel<BackwardFn> {
  const { R, BASE, I, ACC, A, B, INV, C } = locals(1); // parameter: rows
  const H = L.h * 4;
  const rowAddr = [...ins.localGet(BASE), ...ins.localGet(I), ...ins.i32Add];
  const dwAddr = [...ins.localGet(I), ...ins.i32Const(1), ...ins.i32Shl]; // float j -> f64 j
  const promoted = (addr: number[], offset: number) => [
    ...addr,
    ...ins.v128Load(offset),
    ...ins.f64x2PromoteLowF32x4,
  ];
  // two elements: a = dy xhat (xhat = x inv);  dw += a;  acc += w a
  const pair = (half: number) => [
    ...[...promoted(rowAddr, L.y + half), ...promoted(rowAddr, L.x + half), ...ins.localGet(INV)],
    ...[...ins.f64x2Splat, ...ins.f64x2Mul, ...ins.f64x2Mul, ...ins.localSet(A)],
    ...[...dwAddr, ...dwAddr, ...ins.v128Load(L.dw + 2 * half), ...ins.localGet(A), ...ins.f64x2Add],
    ...ins.v128Store(L.dw + 2 * half),
    ...[...ins.localGet(ACC), ...promoted(ins.localGet(I), L.w + half), ...ins.localGet(A), ...ins.f64x2Mul],
    ...[...ins.f64x2Add, ...ins.localSet(ACC)],
  ];
  const body = forLoop(R, ins.localGet(0), 1, [
    ...[...ins.localGet(R), ...ins.i32Const(H), ...ins.i32Mul, ...ins.localSet(BASE)],
    ...[...ins.localGet(R), ...ins.i32Const(3), ...ins.i32Shl, ...ins.f64Load(L.inv), ...ins.localSet(INV)],
    ...[...ins.v128ConstF32(0), ...ins.localSet(ACC)],
    ...forLoop(I, ins.i32Const(H), 16, [...pair(0), ...pair(8)]),
    // c = (lane 0 + lane 1) / h;  A = inv (4 lanes), B = inv c (4 lanes)
    ...[...ins.localGet(ACC), ...ins.f64x2ExtractLane(0), ...ins.localGet(ACC), ...ins.f64x2ExtractLane(1)],
    ...[...ins.f64Add, ...ins.f64Const(L.h), ...ins.f64Div, ...ins.localSet(C)],
    ...[...ins.localGet(INV), ...ins.f32DemoteF64, ...ins.f32x4Splat, ...ins.localSet(A)],
    ...[...ins.localGet(INV), ...ins.localGet(C), ...ins.f64Mul, ...ins.f32DemoteF64, ...ins.f32x4Splat],
    ...ins.localSet(B),
    // dx = inv (w dy - x inv c)
    ...forLoop(I, ins.i32Const(H), 16, [
      ...[...rowAddr, ...ins.localGet(A), ...ins.localGet(I), ...ins.v128Load(L.w), ...rowAddr],
      ...[...ins.v128Load(L.y), ...ins.f32x4Mul, ...rowAddr, ...ins.v128Load(L.x), ...ins.localGet(B)],
      ...[...ins.f32x4Mul, ...ins.f32x4Sub, ...ins.f32x4Mul, ...ins.v128Store(L.dx)],
    ]),
  ]);
  return compileKernel<BackwardFn>([I32], LOCAL_TYPES, [body], L.bytes);
}

const forwards = new Map<number, { L: Layout; k: WasmKernel<ForwardFn> }>();
const backwards = new Map<number, { L: Layout; k: WasmKernel<BackwardFn> }>();

/** The WebAssembly kernels take rows whose width is a multiple of 4 (others use the loops in norm.ts). */
export function wasmRmsNormFits(h: number): boolean {
  return h % 4 === 0 && h > 0;
}

function views(k: WasmKernel<unknown>) {
  const buffer = k.memory.buffer;
  return {
    f32: (offset: number, n: number) => new Float32Array(buffer, offset, n),
    f64: (offset: number, n: number) => new Float64Array(buffer, offset, n),
  };
}

/** y = w x inv per row of x [rows, h]; inv (one per row) is saved for the backward. */
export function rmsNormForwardWasm(
  x: Float32Array,
  w: Float32Array,
  eps: number,
  y: Float32Array,
  inv: Float64Array,
): void {
  const h = w.length;
  let e = forwards.get(h);
  if (!e) {
    const L = layout(h);
    forwards.set(h, (e = { L, k: buildForward(L) }));
  }
  const { L, k } = e;
  const v = views(k);
  v.f32(L.w, h).set(w);
  const rows = inv.length;
  for (let r0 = 0; r0 < rows; r0 += L.chunkRows) {
    const n = Math.min(L.chunkRows, rows - r0);
    v.f32(L.x, n * h).set(x.subarray(r0 * h, (r0 + n) * h));
    k.fn(n, eps);
    y.set(v.f32(L.y, n * h), r0 * h);
    inv.set(v.f64(L.inv, n), r0);
  }
}

/** dx, and dw accumulated (float64) over the rows, from dy and the forward's inv. */
export function rmsNormBackwardWasm(
  x: Float32Array,
  w: Float32Array,
  inv: Float64Array,
  dy: Float32Array,
  dx: Float32Array,
  dw: Float64Array,
): void {
  const h = w.length;
  let e = backwards.get(h);
  if (!e) {
    const L = layout(h);
    backwards.set(h, (e = { L, k: buildBackward(L) }));
  }
  const { L, k } = e;
  const v = views(k);
  v.f32(L.w, h).set(w);
  const dwStage = v.f64(L.dw, h);
  dwStage.set(dw);
  const rows = inv.length;
  for (let r0 = 0; r0 < rows; r0 += L.chunkRows) {
    const n = Math.min(L.chunkRows, rows - r0);
    v.f32(L.x, n * h).set(x.subarray(r0 * h, (r0 + n) * h));
    v.f32(L.y, n * h).set(dy.subarray(r0 * h, (r0 + n) * h));
    v.f64(L.inv, n).set(inv.subarray(r0, r0 + n));
    k.fn(n);
    dx.set(v.f32(L.dx, n * h), r0 * h);
  }
  dw.set(dwStage);
}
