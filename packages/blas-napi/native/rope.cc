// RoPE's rotation on every thread, for x: [batch, seq, heads, d] (rows of d) and cos/sin: [seq, d]:
//   out = x*cos + sign * cat(-x2, x1)*sin   (sign 1: the rotation; -1: its transpose, the backward)
// In float64 like the TypeScript loop it stands in for (packages/tensor/src/ops/rope.ts), which computes
// each output in JavaScript's doubles and rounds once to float32: the two give the same bits.
#include "rope.h"

#include <algorithm>
#include <thread>
#include <vector>

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

Napi::Float32Array Floats(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string("rope: ") + name + " must be a Float32Array");
  return info[i].As<Napi::Float32Array>();
}

size_t Positive(const Napi::CallbackInfo& info, size_t i, const char* name) {
  int64_t v = info[i].IsNumber() ? info[i].As<Napi::Number>().Int64Value() : 0;
  if (v < 1) throw Napi::RangeError::New(info.Env(), std::string("rope: ") + name + " must be a positive integer");
  return static_cast<size_t>(v);
}

}  // namespace

// rope(src, cos, sin, sign, seq, heads, d, out, threads)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "rope: expected 9 arguments");
  Napi::Float32Array src = Floats(info, 0, "src"), c = Floats(info, 1, "cos"), sn = Floats(info, 2, "sin"),
                     out = Floats(info, 7, "out");
  double sign = info[3].ToNumber().DoubleValue();
  if (sign != 1 && sign != -1) throw Napi::RangeError::New(env, "rope: sign must be 1 or -1");
  const Shape s{Positive(info, 4, "seq"), Positive(info, 5, "heads"), Positive(info, 6, "d")};
  size_t threads = Positive(info, 8, "threads");
  if (s.d % 2 != 0) throw Napi::RangeError::New(env, "rope: d must be even");
  size_t n = src.ElementLength();
  if (n % (s.seq * s.heads * s.d) != 0 || out.ElementLength() != n)
    throw Napi::RangeError::New(env, "rope: src and out must hold whole [seq, heads, d] blocks of the same size");
  if (c.ElementLength() != s.seq * s.d || sn.ElementLength() != s.seq * s.d)
    throw Napi::RangeError::New(env, "rope: cos and sin must be [seq, d]");
  size_t rows = n / s.d;
  threads = std::min(threads, std::max<size_t>(1, rows / kMinRowsPerThread));
  size_t per = (rows + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; t++)
    pool.emplace_back(Rotate, src.Data(), c.Data(), sn.Data(), sign, s, std::min(rows, t * per),
                      std::min(rows, (t + 1) * per), out.Data());
  Rotate(src.Data(), c.Data(), sn.Data(), sign, s, 0, std::min(rows, per), out.Data());
  for (auto& th : pool) th.join();
  return env.Undefined();
}
