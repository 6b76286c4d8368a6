// out = a + b elementwise on every thread: the residual stream's additions and autograd's sums of two
// gradients. One float32 addition per element, so the result is the same as any other way of adding.
#include "add.h"

#include <algorithm>

#include "args.h"

namespace {

__attribute__((target_clones("avx512f", "avx2", "default"))) void AddRange(const float* __restrict__ a,
                                                                           const float* __restrict__ b,
                                                                           float* __restrict__ out,
                                                                           size_t begin, size_t end) {
  for (size_t i = begin; i < end; i++) out[i] = a[i] + b[i];
}

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr size_t kMinPerThread = 1 << 17;

}  // namespace

// add(a, b, out, threads)
Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* fn = "add";
  if (info.Length() != 4) throw Napi::TypeError::New(info.Env(), "add: expected 4 arguments");
  Napi::Float32Array a = args::Floats(info, 0, fn, "a"), b = args::Floats(info, 1, fn, "b"),
                     out = args::Floats(info, 2, fn, "out");
  const size_t n = args::SameLength(info, {&a, &b, &out}, fn);
  const size_t threads = args::Useful(args::Positive(info, 3, fn, "threads"), n, kMinPerThread);
  const float *pa = a.Data(), *pb = b.Data();
  float* po = out.Data();
  args::Split(n, threads, [&](size_t i0, size_t i1) { AddRange(pa, pb, po, i0, i1); }, 16);
  return info.Env().Undefined();
}
