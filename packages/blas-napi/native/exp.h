// exp(x) for the shifted scores of a softmax (x <= 0), 16 float32 lanes at a time. Written with the
// compiler's vector types, so that every instruction set (AVX-512, AVX2, SSE2) runs the same operations in
// the same order and gives the same bits (the addon is built without FMA contraction). Always inlined, so
// that each of a function's target_clones gets its own instructions.
#pragma once
#include <cstdint>
#include <cstring>

namespace softmax {

typedef float F16 __attribute__((vector_size(64)));
typedef uint32_t U16 __attribute__((vector_size(64)));
typedef double D8 __attribute__((vector_size(64)));
typedef float F8 __attribute__((vector_size(32)));

#define SOFTMAX_INLINE inline __attribute__((always_inline))

SOFTMAX_INLINE F16 Broadcast(float v) { return F16{} + v; }

// exp(x) = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2) / 2 (ln 2 split in two parts, so that n ln 2
// is exact), e^r = 1 + r + r^2 P(r) with Cephes' degree-5 P: within 2 ulp of float32. Below -87 (and at
// -inf) exp is clamped to exp(-87) ~ 2e-38, the smallest that stays a normal float32.
SOFTMAX_INLINE F16 ExpNonPositive(F16 x) {
  const F16 low = Broadcast(-87.0f);
  x = x < low ? low : x;
  const F16 shifter = Broadcast(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const F16 t = x * 1.44269504f + shifter;
  const F16 n = t - shifter;  // in [-126, 0]
  const F16 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  F16 p = Broadcast(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const F16 er = (p * (r * r) + r) + 1.0f;
  // 2^n from the bits of t, whose low mantissa bits hold 2^22 + n: (n + 127) << 23 is the float32 2^n
  return er * (F16)(((U16)t + 127) << 23);  // casts between vector types keep the bits
}

// 16 floats from p (only the first `count` are read; the other lanes hold `fill`).
SOFTMAX_INLINE F16 Load16(const float* p, size_t count = 16, float fill = 0) {
  F16 v = Broadcast(fill);
  std::memcpy(&v, p, count * sizeof(float));
  return v;
}

// Adds the 16 lanes of v, widened to float64, to the 8 lanes of sum: lane l gets v[l] + v[l + 8].
SOFTMAX_INLINE void AddWide(D8& sum, F16 v) {
  const F8 lo = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
  const F8 hi = {v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
  sum += __builtin_convertvector(lo, D8);
  sum += __builtin_convertvector(hi, D8);
}

}  // namespace softmax
