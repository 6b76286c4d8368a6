// exp(x) on 4 float32 lanes in WebAssembly SIMD (which has no exp instruction), as in Cephes' expf:
//   x clamped to [-87.34, 88.72] (exp stays a normal float32: 1.18e-38 .. 3.4e38),
//   n = nearest(x log2 e),   r = x - n ln2   (ln2 split in two so that n ln2 is exact to float32),
//   exp(r) = 1 + r + r^2 P(r) on |r| <= ln2 / 2   (P of degree 5: relative error ~1e-7, float32's rounding),
//   exp(x) = 2^n exp(r),   2^n built from its bits: (n + 127) << 23.
import { ins } from "./wasm.ts";

const LOG2E = 1.4426950408889634;
const LN2_HI = 0.693359375; // few mantissa bits: n * LN2_HI is exact
const LN2_LO = -2.1219444e-4;
const P = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];

/**
 * Instructions that replace the v128 on top of the stack by its lanes' exp. `n` and `r` are two v128
 * locals the sequence may overwrite.
 */
export function expF32x4(n: number, r: number): number[] {
  const c = ins.v128ConstF32;
  const code: number[] = [
    ...c(88.72283935546875),
    ...ins.f32x4Min,
    ...c(-87.33654022216797),
    ...ins.f32x4Max,
    ...ins.localTee(r), // r = x for now
    ...c(LOG2E),
    ...ins.f32x4Mul,
    ...ins.f32x4Nearest,
    ...ins.localSet(n),
    // r = (x - n LN2_HI) - n LN2_LO
    ...ins.localGet(r),
    ...ins.localGet(n),
    ...c(LN2_HI),
    ...ins.f32x4Mul,
    ...ins.f32x4Sub,
    ...ins.localGet(n),
    ...c(LN2_LO),
    ...ins.f32x4Mul,
    ...ins.f32x4Sub,
    ...ins.localSet(r),
  ];
  // Horner: P(r) = ((((P0 r + P1) r + P2) r + P3) r + P4) r + P5
  code.push(...c(P[0]!));
  for (const p of P.slice(1)) code.push(...ins.localGet(r), ...ins.f32x4Mul, ...c(p), ...ins.f32x4Add);
  // 1 + r + r^2 P(r)
  code.push(...ins.localGet(r), ...ins.localGet(r), ...ins.f32x4Mul, ...ins.f32x4Mul);
  code.push(...ins.localGet(r), ...ins.f32x4Add, ...c(1), ...ins.f32x4Add);
  // times 2^n: the float whose exponent bits are n + 127
  code.push(...ins.localGet(n), ...ins.i32x4TruncSatF32x4S, ...ins.i32Const(127), ...ins.i32x4Splat);
  code.push(...ins.i32x4Add, ...ins.i32Const(23), ...ins.i32x4Shl, ...ins.f32x4Mul);
  return code;
}
