// A minimal WebAssembly writer for the few elementwise loops that TS cannot make fast: V8 compiles a JS
// loop to scalar float64 code, while WebAssembly's SIMD instructions work on 4 float32 lanes at a time. One module = one function over the module's own memory; the caller copies data in and out.
// Encoding from the WebAssembly core spec (binary format) and its SIMD proposal.

/** The part of WebAssembly's JS API used here (the project's TS libs, without DOM, do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** Unsigned LEB128. */
function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const simd = (opcode: number): number[] => [0xfd, ...uleb(opcode)];

/** The instructions the kernels use: their bytes (or a function of the immediate that returns them). */
export const ins = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a],
  i32GeU: [0x4f],
  /** block / loop with no result, closed by `end`. */
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  /** Loads/stores 16 bytes at (address on the stack) + offset, 16-byte aligned. */
  v128Load: (offset: number) => [...simd(0), 4, ...uleb(offset)],
  v128Store: (offset: number) => [...simd(11), 4, ...uleb(offset)],
  /** A 4-lane constant, every lane `v`. */
  v128ConstF32: (v: number) => [
    ...simd(12),
    ...[0, 1, 2, 3].flatMap(() => [...new Uint8Array(Float32Array.of(v).buffer)]),
  ],
  i32Mul: [0x6c],
  i32Shl: [0x74],
  f64Add: [0xa0],
  f64Mul: [0xa2],
  f64Div: [0xa3],
  f64Sqrt: [0x9f],
  f64Const: (v: number) => [0x44, ...new Uint8Array(Float64Array.of(v).buffer)],
  f32DemoteF64: [0xb6],
  /** Loads/stores the f64 at (address on the stack) + offset, 8-byte aligned. */
  f64Load: (offset: number) => [0x2b, 3, ...uleb(offset)],
  f64Store: (offset: number) => [0x39, 3, ...uleb(offset)],
  f64x2Splat: simd(20),
  f64x2ExtractLane: (lane: number) => [...simd(33), lane],
  f64x2PromoteLowF32x4: simd(95),
  f64x2Add: simd(240),
  f64x2Mul: simd(242),
  f32x4Splat: simd(19),
  f32x4Sqrt: simd(227),
  f32x4Add: simd(228),
  f32x4Sub: simd(229),
  f32x4Mul: simd(230),
  f32x4Div: simd(231),
};

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}
function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}
function name(s: string): number[] {
  const bytes = [...Buffer.from(s, "utf8")];
  return [...uleb(bytes.length), ...bytes];
}

export interface WasmKernel<F> {
  /** The module's memory as float32s (the caller's staging area). */
  memory: Float32Array;
  fn: F;
}

/**
 * Compiles a module with one exported function `fn(params...)` (no result) and `memoryBytes` of memory.
 * `locals` are the types of the function's locals after its parameters; `body` its instructions.
 */
export function compileKernel<F>(
  params: number[],
  locals: number[],
  body: number[][],
  memoryBytes: number,
): WasmKernel<F> {
  const pages = Math.ceil(memoryBytes / 65536);
  const code = [...vector(locals.map((t) => [1, t])), ...body.flat(), ...ins.end];
  const bytes = new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...section(1, vector([[0x60, ...vector(params.map((t) => [t])), 0]])), // type: (params) -> ()
    ...section(3, vector([[0]])), // function 0 has type 0
    ...section(5, vector([[0, ...uleb(pages)]])), // one memory of `pages` pages
    ...section(
      7,
      vector([
        [...name("memory"), 2, 0],
        [...name("fn"), 0, 0],
      ]),
    ), // exports
    ...section(10, vector([[...uleb(code.length), ...code]])), // function body
  ]);
  const instance = new wasm.Instance(new wasm.Module(bytes));
  const memory = instance.exports.memory as { buffer: ArrayBuffer };
  return { memory: new Float32Array(memory.buffer), fn: instance.exports.fn as F };
}
