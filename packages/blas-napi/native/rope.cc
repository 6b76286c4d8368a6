// RoPE's rotation on every thread, for x: [batch, seq, heads, d] (rows of d) and cos/sin: [seq, d]:
//   out = x*cos + sign * cat(-x2, x1)*sin   (sign 1: the rotation; -1: its transpose, the backward)
// In float64 like the TypeScript loop it stands in for (packages/tensor/src/ops/rope.ts), which computes
// each output in JavaScript's doubles and rounds once to float32: the two give the same bits.
#include "rope.h"

#include <algorithm>

#include "args.h"

namespace {

struct Shape {
  size_t seq, heads, d;
};

__attribute__((target_clones("avx2", "default"))) void Rotate(const float* __restrict__ src,
                                                              const float* __restrict__ c,
                                                              const float* __restrict__ sn, double sign,
                                                              Shape s, size_t begin, size_t end,
                                                              float* __restrict__ out) {
  const size_t half = s.d / 2;
  for (size_t r = begin; r < end; r++) {
    const float* x = src + r * s.d;
    float* o = out + r * s.d;
    const size_t cs = (r / s.heads % s.seq) * s.d;  // this row's position
    for (size_t j = 0; j < half; j++) {
      const double x1 = x[j], x2 = x[j + half];
      o[j] = static_cast<float>(x1 * c[cs + j] - sign * x2 * sn[cs + j]);
      o[j + half] = static_cast<float>(x2 * c[cs + j + half] + sign * x1 * sn[cs + j + half]);
    }
  }
}

// Below this many rows per thread, starting a thread costs more than it saves.
constexpr size_t kMinRowsPerThread = 2048;

}  // namespace

// rope(src, cos, sin, sign, seq, heads, d, out, threads)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "rope: expected 9 arguments");
  Napi::Float32Array src = args::Floats(info, 0, "rope", "src"), c = args::Floats(info, 1, "rope", "cos"),
                     sn = args::Floats(info, 2, "rope", "sin"), out = args::Floats(info, 7, "rope", "out");
  double sign = info[3].ToNumber().DoubleValue();
  if (sign != 1 && sign != -1) throw Napi::RangeError::New(env, "rope: sign must be 1 or -1");
  const Shape s{args::Positive(info, 4, "rope", "seq"), args::Positive(info, 5, "rope", "heads"),
                args::Positive(info, 6, "rope", "d")};
  size_t threads = args::Positive(info, 8, "rope", "threads");
  if (s.d % 2 != 0) throw Napi::RangeError::New(env, "rope: d must be even");
  size_t n = src.ElementLength();
  if (n % (s.seq * s.heads * s.d) != 0 || out.ElementLength() != n)
    throw Napi::RangeError::New(env, "rope: src and out must hold whole [seq, heads, d] blocks of the same size");
  if (c.ElementLength() != s.seq * s.d || sn.ElementLength() != s.seq * s.d)
    throw Napi::RangeError::New(env, "rope: cos and sin must be [seq, d]");
  size_t rows = n / s.d;
  threads = args::Useful(threads, rows, kMinRowsPerThread);
  const float *px = src.Data(), *pc = c.Data(), *ps = sn.Data();
  float* po = out.Data();
  args::Split(rows, threads, [&](size_t r0, size_t r1) { Rotate(px, pc, ps, sign, s, r0, r1, po); });
  return env.Undefined();
}
