// AdamW's update on every thread: memory-bound (7 floats move per parameter: w, g, m, v in, w, m, v out),
// so a second thread nearly halves it where the WebAssembly loop (one thread, staging w and g through
// its own memory) cannot. The float32 operations and their order are the WebAssembly loop's
// (packages/tensor/src/optim/adamw_update.ts): the two give the same bits. No FMA contraction
// (-ffp-contract=off in binding.gyp) and sqrt without errno (-fno-math-errno), so the loop vectorizes.
#include "adamw.h"

#include <cmath>

#include "args.h"

namespace {

struct Scalars {
  float b1, c1, b2, c2, invBc2Sqrt, eps, stepSize, decay;
};

// m = b1 m + c1 g;   v = b2 v + c2 g g;   w = w decay - stepSize (m / (sqrt(v) invBc2Sqrt + eps))
__attribute__((target_clones("avx2", "default"))) void Update(float* __restrict__ w, const float* __restrict__ g,
                                                              float* __restrict__ m, float* __restrict__ v,
                                                              size_t n, const Scalars s) {
  for (size_t i = 0; i < n; i++) {
    float mi = m[i] * s.b1 + g[i] * s.c1;
    float vi = v[i] * s.b2 + g[i] * g[i] * s.c2;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * s.decay - s.stepSize * (mi / (std::sqrt(vi) * s.invBc2Sqrt + s.eps));
  }
}

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr size_t kMinPerThread = size_t{1} << 17;

}  // namespace

// adamw(w, g, m, v, b1, c1, b2, c2, invBc2Sqrt, eps, stepSize, decay, threads): one parameter's step, in place.
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 13) throw Napi::TypeError::New(env, "adamw: expected 13 arguments");
  Napi::Float32Array w = args::Floats(info, 0, "adamw", "w"), g = args::Floats(info, 1, "adamw", "g"),
                     m = args::Floats(info, 2, "adamw", "m"), v = args::Floats(info, 3, "adamw", "v");
  size_t n = w.ElementLength();
  if (g.ElementLength() != n || m.ElementLength() != n || v.ElementLength() != n)
    throw Napi::RangeError::New(env, "adamw: w, g, m and v must have the same length");
  float f[8];
  for (size_t i = 0; i < 8; i++) {
    if (!info[4 + i].IsNumber()) throw Napi::TypeError::New(env, "adamw: the scalars must be numbers");
    f[i] = info[4 + i].As<Napi::Number>().FloatValue();
  }
  const Scalars s{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
  size_t threads = args::Useful(args::Positive(info, 12, "adamw", "threads"), n, kMinPerThread);
  float *pw = w.Data(), *pm = m.Data(), *pv = v.Data();
  const float* pg = g.Data();
  // slices of whole cache lines (16 floats), so no two threads write the same line
  args::Split(n, threads, [&](size_t b, size_t e) { Update(pw + b, pg + b, pm + b, pv + b, e - b, s); }, 16);
  return env.Undefined();
}
