// Cross-entropy over logits [n, vocab] on every thread, fused into one pass per row (a row of the bench's
// 49152-word vocabulary is 192 KB: it stays in cache between the row's three loops):
//   max = max_j x_j;   e_j = exp(x_j - max), sum = sum_j e_j (float64);   loss = max + log(sum) - x_target
//   grad_j = e_j * scale / sum, minus scale at the target (scale = 1 / the number of counted rows)
// Rows whose target is ignoreIndex get a zero gradient and no loss. Each row's loss goes to losses[row];
// the caller sums them in row order, so the result does not depend on the thread count.
#include "cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "args.h"
#include "exp.h"

namespace {

using softmax::D8;
using softmax::F16;

// The row's largest logit, over 16 lanes then across them (NaNs are skipped: they reach the loss anyway).
SOFTMAX_INLINE float RowMax(const float* x, size_t vocab) {
  F16 lanes = softmax::Broadcast(-INFINITY);
  size_t j = 0;
  for (; j + 16 <= vocab; j += 16) {
    const F16 v = softmax::Load16(x + j);
    lanes = v > lanes ? v : lanes;
  }
  float max = lanes[0];
  for (int l = 1; l < 16; l++) max = lanes[l] > max ? lanes[l] : max;
  for (; j < vocab; j++) max = x[j] > max ? x[j] : max;
  return max;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) double Row(const float* __restrict__ x,
                                                                        size_t vocab, int32_t target,
                                                                        double scale, float* __restrict__ g) {
  const float max = RowMax(x, vocab);
  // e_j = exp(x_j - max) into g, summed in 8 float64 lanes (a fixed order: the same bits on every CPU)
  D8 sums = {};
  size_t j = 0;
  for (; j + 16 <= vocab; j += 16) {
    const F16 e = softmax::ExpNonPositive(softmax::Load16(x + j) - max);
    std::memcpy(g + j, &e, sizeof e);
    softmax::AddWide(sums, e);
  }
  if (j < vocab) {  // the last few: the lanes past the row hold -inf, whose exp is not stored or summed
    const size_t rest = vocab - j;
    F16 e = softmax::ExpNonPositive(softmax::Load16(x + j, rest, -INFINITY) - max);
    for (size_t l = rest; l < 16; l++) e[l] = 0;
    std::memcpy(g + j, &e, rest * sizeof(float));
    softmax::AddWide(sums, e);
  }
  double sum = 0;
  for (int l = 0; l < 8; l++) sum += sums[l];
  // grad = e * scale / sum, then minus scale at the target
  const float k = static_cast<float>(scale / sum);
  for (j = 0; j < vocab; j++) g[j] *= k;
  g[target] = static_cast<float>(g[target] - scale);
  return max + std::log(sum) - x[target];
}

// Below this many logits per thread, starting a thread costs more than it saves.
constexpr size_t kMinPerThread = 1 << 16;

}  // namespace

// crossEntropy(logits, targets, ignoreIndex, scale, grad, losses, threads)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "crossEntropy";
  if (info.Length() != 7) throw Napi::TypeError::New(env, "crossEntropy: expected 7 arguments");
  Napi::Float32Array x = args::Floats(info, 0, fn, "logits"), grad = args::Floats(info, 4, fn, "grad");
  auto targets = args::Typed<Napi::Int32Array>(info, 1, napi_int32_array, fn, "targets", "Int32Array");
  Napi::Float64Array losses = args::Doubles(info, 5, fn, "losses");
  if (!info[2].IsNumber() || !info[3].IsNumber())
    throw Napi::TypeError::New(env, "crossEntropy: ignoreIndex and scale must be numbers");
  const int64_t ignore = info[2].As<Napi::Number>().Int64Value();
  const double scale = info[3].As<Napi::Number>().DoubleValue();
  size_t threads = args::Positive(info, 6, fn, "threads");
  const size_t n = targets.ElementLength();
  if (n == 0 || x.ElementLength() % n != 0 || x.ElementLength() == 0)
    throw Napi::RangeError::New(env, "crossEntropy: logits must be [n, vocab] for n targets");
  const size_t vocab = x.ElementLength() / n;
  if (grad.ElementLength() != x.ElementLength() || losses.ElementLength() != n)
    throw Napi::RangeError::New(env, "crossEntropy: grad must be [n, vocab] and losses [n]");
  const int32_t* t = targets.Data();
  for (size_t i = 0; i < n; i++)
    if (t[i] != ignore && (t[i] < 0 || static_cast<size_t>(t[i]) >= vocab))
      throw Napi::RangeError::New(env, "crossEntropy: target " + std::to_string(t[i]) + " is outside [0, " +
                                           std::to_string(vocab) + ")");
  threads = args::Useful(threads, n * vocab, kMinPerThread);
  const float* px = x.Data();
  float* pg = grad.Data();
  double* pl = losses.Data();
  args::Split(n, threads, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
      if (t[r] == ignore) {
        std::fill(pg + r * vocab, pg + (r + 1) * vocab, 0.0f);
        pl[r] = 0;
      } else {
        pl[r] = Row(px + r * vocab, vocab, t[r], scale, pg + r * vocab);
      }
    }
  });
  return env.Undefined();
}
