// The SwiGLU gate of the Llama MLP on every thread, elementwise over [tokens, intermediate]:
//   forward:  out = (a s) u,  s = sigmoid(a) (a: the gate projection, u: the up projection)
//   backward: dGate = (dy s u) (1 + a (1 - s)),  dUp = (dy s) a
// sigmoid from e = exp(-|a|) <= 1, which never overflows: 1 / (1 + e) for a >= 0, e / (1 + e) below.
#include "swiglu.h"

#include <algorithm>

#include "args.h"
#include "exp.h"

namespace {

using softmax::Broadcast;
using softmax::F16;
using softmax::Load16;

SOFTMAX_INLINE F16 Sigmoid(F16 a) {
  const F16 zero = Broadcast(0);
  const F16 e = softmax::ExpNonPositive(a < zero ? a : -a);
  const F16 one = Broadcast(1);
  return (a < zero ? e : one) / (one + e);
}

// One chunk of N = 16 elements (a whole vector), or with N = 0 the last n < 16; the chunk's size is then
// known when compiling the whole ones, which load and store as one instruction each.
template <size_t N>
SOFTMAX_INLINE void ForwardChunk(const float* a, const float* u, float* out, size_t n) {
  const size_t k = N ? N : n;
  const F16 av = Load16(a, k), uv = Load16(u, k);
  const F16 o = (av * Sigmoid(av)) * uv;
  std::memcpy(out, &o, k * sizeof(float));
}

template <size_t N>
SOFTMAX_INLINE void BackwardChunk(const float* a, const float* u, const float* dy, float* dGate, float* dUp,
                                  size_t n) {
  const size_t k = N ? N : n;
  const F16 one = Broadcast(1);
  const F16 av = Load16(a, k), uv = Load16(u, k), dyv = Load16(dy, k);
  const F16 s = Sigmoid(av);
  const F16 dys = dyv * s;
  const F16 g = (dys * uv) * (one + av * (one - s));
  const F16 du = dys * av;
  std::memcpy(dGate, &g, k * sizeof(float));
  std::memcpy(dUp, &du, k * sizeof(float));
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void Forward(const float* a, const float* u,
                                                                          float* out, size_t begin,
                                                                          size_t end) {
  size_t i = begin;
  for (; i + 16 <= end; i += 16) ForwardChunk<16>(a + i, u + i, out + i, 16);
  if (i < end) ForwardChunk<0>(a + i, u + i, out + i, end - i);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void Backward(const float* a, const float* u,
                                                                           const float* dy, float* dGate,
                                                                           float* dUp, size_t begin,
                                                                           size_t end) {
  size_t i = begin;
  for (; i + 16 <= end; i += 16) BackwardChunk<16>(a + i, u + i, dy + i, dGate + i, dUp + i, 16);
  if (i < end) BackwardChunk<0>(a + i, u + i, dy + i, dGate + i, dUp + i, end - i);
}

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr size_t kMinPerThread = 1 << 16;

}  // namespace

// swiglu(gate, up, out, threads)
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const char* fn = "swiglu";
  if (info.Length() != 4) throw Napi::TypeError::New(info.Env(), "swiglu: expected 4 arguments");
  Napi::Float32Array a = args::Floats(info, 0, fn, "gate"), u = args::Floats(info, 1, fn, "up"),
                     out = args::Floats(info, 2, fn, "out");
  const size_t n = args::SameLength(info, {&a, &u, &out}, fn);
  const size_t threads = args::Useful(args::Positive(info, 3, fn, "threads"), n, kMinPerThread);
  args::Split(n, threads, [&](size_t i0, size_t i1) { Forward(a.Data(), u.Data(), out.Data(), i0, i1); }, 16);
  return info.Env().Undefined();
}

// swigluBackward(gate, up, dy, dGate, dUp, threads)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* fn = "swigluBackward";
  if (info.Length() != 6) throw Napi::TypeError::New(info.Env(), "swigluBackward: expected 6 arguments");
  Napi::Float32Array a = args::Floats(info, 0, fn, "gate"), u = args::Floats(info, 1, fn, "up"),
                     dy = args::Floats(info, 2, fn, "dy"), dGate = args::Floats(info, 3, fn, "dGate"),
                     dUp = args::Floats(info, 4, fn, "dUp");
  const size_t n = args::SameLength(info, {&a, &u, &dy, &dGate, &dUp}, fn);
  const size_t threads = args::Useful(args::Positive(info, 5, fn, "threads"), n, kMinPerThread);
  args::Split(
      n, threads,
      [&](size_t i0, size_t i1) { Backward(a.Data(), u.Data(), dy.Data(), dGate.Data(), dUp.Data(), i0, i1); }, 16);
  return info.Env().Undefined();
}
