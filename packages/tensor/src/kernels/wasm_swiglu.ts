// SwiGLU's forward and backward as single fused WebAssembly SIMD passes (4 lanes), on chunks staged in
// the module's memory. In onnxruntime they are graphs of 3 and 10 elementwise nodes, each a pass over
// [tokens, 1536] floats (6 MB per array, more than the L2 cache).
//   s = sigmoid(a) = 1 / (1 + exp(-a))       (a: gate, u: up, dy: the output's gradient)
//   forward:   y = a s u
//   backward:  da = dy u s (1 + a (1 - s)),   du = dy a s
import { compileKernel, ins, I32, V128, type WasmKernel } from "./wasm.ts";
import { expF32x4 } from "./wasm_exp.ts";

const CHUNK = 4096; // elements per array per call (16 KiB)
const BYTES = CHUNK * 4;
type Fn = (bytes: number) => void;

// parameter 0: bytes per array; locals: the byte index, then v128s
const [I, A, S, N, R, T] = [1, 2, 3, 4, 5, 6];

/** for (i = 0; i < bytes; i += 16) { body } */
function loop(body: number[]): number[] {
  return [
    ...ins.block,
    ...ins.loop,
    ...[...ins.localGet(I), ...ins.localGet(0), ...ins.i32GeU, ...ins.brIf(1)],
    ...body,
    ...[...ins.localGet(I), ...ins.i32Const(16), ...ins.i32Add, ...ins.localSet(I), ...ins.br(0)],
    ...ins.end,
    ...ins.end,
  ];
}

const load = (array: number) => [...ins.localGet(I), ...ins.v128Load(array * BYTES)];

/** a = gate (array 0); s = sigmoid(a). */
const sigmoid = [
  ...load(0),
  ...ins.localSet(A),
  ...[...ins.v128ConstF32(0), ...ins.localGet(A), ...ins.f32x4Sub], // -a
  ...expF32x4(N, R),
  ...[...ins.v128ConstF32(1), ...ins.f32x4Add, ...ins.localSet(T)],
  ...[...ins.v128ConstF32(1), ...ins.localGet(T), ...ins.f32x4Div, ...ins.localSet(S)],
];

function compile(body: number[], arrays: number): WasmKernel<Fn> {
  return compileKernel<Fn>([I32], [I32, V128, V128, V128, V128, V128], [body], arrays * BYTES);
}

// arrays: 0 gate, 1 up, 2 y
const forward = () =>
  compile(
    loop([
      ...sigmoid,
      ...[...ins.localGet(I), ...ins.localGet(A), ...ins.localGet(S), ...ins.f32x4Mul, ...load(1)],
      ...[...ins.f32x4Mul, ...ins.v128Store(2 * BYTES)],
    ]),
    3,
  );

// arrays: 0 gate, 1 up, 2 dy, 3 dgate, 4 dup
const backward = () =>
  compile(
    loop([
      ...sigmoid,
      // du = dy a s
      ...[...ins.localGet(I), ...load(2), ...ins.localGet(A), ...ins.f32x4Mul, ...ins.localGet(S)],
      ...[...ins.f32x4Mul, ...ins.v128Store(4 * BYTES)],
      // da = dy u s (1 + a (1 - s))
      ...[...ins.localGet(I), ...load(2), ...load(1), ...ins.f32x4Mul, ...ins.localGet(S), ...ins.f32x4Mul],
      ...[...ins.v128ConstF32(1), ...ins.localGet(A), ...ins.v128ConstF32(1), ...ins.localGet(S)],
      ...[...ins.f32x4Sub, ...ins.f32x4Mul, ...ins.f32x4Add, ...ins.f32x4Mul, ...ins.v128Store(3 * BYTES)],
    ]),
    5,
  );

let fwd: WasmKernel<Fn> | null = null;
let bwd: WasmKernel<Fn> | null = null;

/** Runs kernel k over n elements: copies `inputs` in chunk by chunk, and `outputs` back out. */
function run(k: WasmKernel<Fn>, inputs: Float32Array[], outputs: Float32Array[], n: number): void {
  const stage = (i: number) => k.memory.subarray(i * CHUNK, (i + 1) * CHUNK);
  const ins_ = inputs.map((_, i) => stage(i));
  const outs = outputs.map((_, i) => stage(inputs.length + i));
  for (let start = 0; start < n; start += CHUNK) {
    const len = Math.min(CHUNK, n - start);
    inputs.forEach((x, i) => ins_[i]!.set(x.subarray(start, start + len)));
    // whole 4-lane groups: lanes past len compute on stale values that are not copied back
    k.fn(Math.ceil(len / 4) * 16);
    outputs.forEach((y, i) => y.set(outs[i]!.subarray(0, len), start));
  }
}

/** y = silu(gate) * up. */
export function swigluForwardInto(gate: Float32Array, up: Float32Array, y: Float32Array): void {
  fwd ??= forward();
  run(fwd, [gate, up], [y], y.length);
}

/** dGate and dUp of y = silu(gate) * up, given dy. */
export function swigluBackwardInto(
  gate: Float32Array,
  up: Float32Array,
  dy: Float32Array,
  dGate: Float32Array,
  dUp: Float32Array,
): void {
  bwd ??= backward();
  run(bwd, [gate, up, dy], [dGate, dUp], dy.length);
}
