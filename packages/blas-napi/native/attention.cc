// Causal self-attention with grouped-query attention, forward and backward, on every thread: one task per
// (batch, KV head), which owns that group's rows of dK and dV (query head h uses KV head h / rep).
// q, dout: [batch, seq, heads, d]; k, v: [batch, seq, kv_heads, d]; probs: [batch, heads, seq, seq], of which
// only the causal part (key j <= query i) is written and read.
//   forward:  S = (q / sqrt(d)) k^T;  P = softmax(S) over j <= i;  out = P v
//   backward: dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dP * P)) / sqrt(d);  dQ = dS K;  dK = dS^T Q
// Each output element is a sum in a fixed order (over the head dim, or over keys, queries and the group's
// heads in turn), so the result does not depend on the thread count or the instruction set.
#include "attention.h"

// Multiply-adds fused where the CPU has FMA (this file only): the attention products are bound by them.
#pragma GCC optimize("fp-contract=fast")

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "args.h"
#include "exp.h"

namespace {

using softmax::Broadcast;
using softmax::D8;
using softmax::F16;
using softmax::Load16;

struct Dims {
  size_t b, s, nh, nkv, d;
  size_t rep() const { return nh / nkv; }
  // element offsets of row (batch bi, position i, head h) in the [batch, seq, heads, d] layouts
  size_t q(size_t bi, size_t i, size_t h) const { return ((bi * s + i) * nh + h) * d; }
  size_t kv(size_t bi, size_t i, size_t g) const { return ((bi * s + i) * nkv + g) * d; }
};

constexpr size_t kBlock = 64;  // columns a register block covers: 4 vectors of 16 floats
constexpr size_t kRows = 4;    // rows computed together, sharing each vector they load

// out[r][j] = sum_c a[r][c] cols[c * ld + j] for r < R, j < len (c in order); cols is read up to kBlock past
// len, and each out row gets whole blocks (up to kBlock - 1 past len).
template <size_t R>
SOFTMAX_INLINE void RowsTimesColumns(const float* const* a, size_t d, const float* cols, size_t ld, size_t len,
                                     float* const* out) {
  for (size_t j0 = 0; j0 < len; j0 += kBlock) {
    F16 acc[R][4] = {};
    const float* col = cols + j0;
    for (size_t c = 0; c < d; c++, col += ld) {
      const F16 v[4] = {Load16(col), Load16(col + 16), Load16(col + 32), Load16(col + 48)};
      for (size_t r = 0; r < R; r++) {
        const F16 ar = Broadcast(a[r][c]);
        for (int u = 0; u < 4; u++) acc[r][u] += ar * v[u];
      }
    }
    if (j0 + kBlock <= len)  // a whole block: a size known when compiling, 4 stores a row
      for (size_t r = 0; r < R; r++) std::memcpy(out[r] + j0, acc[r], sizeof acc[r]);
    else
      for (size_t r = 0; r < R; r++) std::memcpy(out[r] + j0, acc[r], (len - j0) * sizeof(float));
  }
}

// o[r][c] = sum_j w[r][j] rows[j * ld + c] for r < R, c < d (j < len, in order).
template <size_t R>
SOFTMAX_INLINE void WeightedRows(const float* const* w, size_t len, const float* rows, size_t ld, size_t d,
                                 float* const* o) {
  size_t c0 = 0;
  for (; c0 + kBlock <= d; c0 += kBlock) {
    F16 acc[R][4] = {};
    for (size_t j = 0; j < len; j++) {
      const float* row = rows + j * ld + c0;
      const F16 v[4] = {Load16(row), Load16(row + 16), Load16(row + 32), Load16(row + 48)};
      for (size_t r = 0; r < R; r++) {
        const F16 wr = Broadcast(w[r][j]);
        for (int u = 0; u < 4; u++) acc[r][u] += wr * v[u];
      }
    }
    for (size_t r = 0; r < R; r++) std::memcpy(o[r] + c0, acc[r], sizeof acc[r]);
  }
  for (; c0 < d; c0++)
    for (size_t r = 0; r < R; r++) {
      float sum = 0;
      for (size_t j = 0; j < len; j++) sum += w[r][j] * rows[j * ld + c0];
      o[r][c0] = sum;
    }
}

// The softmax of s[0..len) in place: exp(s - max) summed in 8 float64 lanes, then times 1 / sum.
SOFTMAX_INLINE void SoftmaxRow(float* s, size_t len) {
  F16 lanes = Broadcast(-INFINITY);
  size_t j = 0;
  for (; j + 16 <= len; j += 16) {
    const F16 v = Load16(s + j);
    lanes = v > lanes ? v : lanes;
  }
  float max = lanes[0];
  for (int l = 1; l < 16; l++) max = lanes[l] > max ? lanes[l] : max;
  for (; j < len; j++) max = s[j] > max ? s[j] : max;
  D8 sums = {};
  for (j = 0; j + 16 <= len; j += 16) {
    const F16 e = softmax::ExpNonPositive(Load16(s + j) - max);
    std::memcpy(s + j, &e, sizeof e);
    softmax::AddWide(sums, e);
  }
  if (j < len) {  // the last few: the lanes past the row hold -inf, whose exp is not stored or summed
    const size_t n = len - j;
    F16 e = softmax::ExpNonPositive(Load16(s + j, n, -INFINITY) - max);
    for (size_t l = n; l < 16; l++) e[l] = 0;
    std::memcpy(s + j, &e, n * sizeof(float));
    softmax::AddWide(sums, e);
  }
  double sum = 0;
  for (int l = 0; l < 8; l++) sum += sums[l];
  const float k = static_cast<float>(1 / sum);
  for (j = 0; j < len; j++) s[j] *= k;
}

// sum_j a[j] b[j] for j < len, products in float32, summed in 8 float64 lanes.
SOFTMAX_INLINE double Dot(const float* a, const float* b, size_t len) {
  D8 sums = {};
  size_t j = 0;
  for (; j + 16 <= len; j += 16) softmax::AddWide(sums, Load16(a + j) * Load16(b + j));
  if (j < len) softmax::AddWide(sums, Load16(a + j, len - j) * Load16(b + j, len - j));
  double sum = 0;
  for (int l = 0; l < 8; l++) sum += sums[l];
  return sum;
}

// x's rows of one head, [s, d] with row stride ld, transposed into [d, s] (plus kBlock of zeros to read past).
void Transpose(const float* x, size_t ld, size_t s, size_t d, std::vector<float>& out) {
  out.assign(d * s + kBlock, 0.0f);
  for (size_t j = 0; j < s; j++)
    for (size_t c = 0; c < d; c++) out[c * s + j] = x[j * ld + c];
}

struct Forward {
  const float *q, *k, *v;
  float *out, *probs;
  Dims m;
};

// Query rows i0..i0+R-1 of head h: scores, softmax, output. Each probs row is zeroed past its last key up to
// the block's last (so that the block's product with V may run over the same keys for all R rows).
template <size_t R>
SOFTMAX_INLINE void ForwardRows(const Forward& f, size_t bi, size_t g, size_t h, size_t i0,
                                const std::vector<float>& kT, std::vector<float>& qs) {
  const Dims& m = f.m;
  const float scale = static_cast<float>(1 / std::sqrt(static_cast<double>(m.d)));
  const float* qRows[R];
  float* p[R];
  float* o[R];
  for (size_t r = 0; r < R; r++) {
    const float* qRow = f.q + m.q(bi, i0 + r, h);
    for (size_t c = 0; c < m.d; c++) qs[r * m.d + c] = qRow[c] * scale;
    qRows[r] = qs.data() + r * m.d;
    p[r] = f.probs + ((bi * m.nh + h) * m.s + i0 + r) * m.s;
    o[r] = f.out + m.q(bi, i0 + r, h);
  }
  const size_t len = i0 + R;  // keys 0..i0+R-1
  RowsTimesColumns<R>(qRows, m.d, kT.data(), m.s, len, p);
  for (size_t r = 0; r < R; r++) {
    SoftmaxRow(p[r], i0 + r + 1);
    std::fill(p[r] + i0 + r + 1, p[r] + len, 0.0f);
  }
  WeightedRows<R>(p, len, f.v + m.kv(bi, 0, g), m.nkv * m.d, m.d, o);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void ForwardGroup(const Forward& f, size_t bi,
                                                                               size_t g) {
  const Dims& m = f.m;
  std::vector<float> kT, qs(kRows * m.d);
  Transpose(f.k + m.kv(bi, 0, g), m.nkv * m.d, m.s, m.d, kT);
  for (size_t h = g * m.rep(); h < (g + 1) * m.rep(); h++) {
    size_t i = 0;
    for (; i + kRows <= m.s; i += kRows) ForwardRows<kRows>(f, bi, g, h, i, kT, qs);
    for (; i < m.s; i++) ForwardRows<1>(f, bi, g, h, i, kT, qs);
  }
}

struct Backward {
  const float *q, *k, *v, *probs, *dout;
  float *dq, *dk, *dv;
  Dims m;
};

// What one (batch, KV head) task keeps: for each head of the group, [s, s] of dS / sqrt(d) and of P, on and
// just past the diagonal (the rest is never read).
struct GroupGrads {
  std::unique_ptr<float[]> dS, p;  // not zero-filled: BackwardRows zeroes what is read past the diagonal
  std::vector<float> dP;
};

// Query rows i0..i0+R-1 of head h (the group's hh-th): dP = dO V^T, dS, and dQ = dS K.
template <size_t R>
SOFTMAX_INLINE void BackwardRows(const Backward& f, size_t bi, size_t g, size_t h, size_t hh, size_t i0,
                                 const std::vector<float>& vT, GroupGrads& t) {
  const Dims& m = f.m;
  const size_t s = m.s;
  const float scale = static_cast<float>(1 / std::sqrt(static_cast<double>(m.d)));
  const float* dO[R];
  float* dP[R];
  const float* dS[R];
  float* dQ[R];
  for (size_t r = 0; r < R; r++) {
    dO[r] = f.dout + m.q(bi, i0 + r, h);
    dP[r] = t.dP.data() + r * (s + kBlock);
    dS[r] = t.dS.get() + (hh * s + i0 + r) * s;
    dQ[r] = f.dq + m.q(bi, i0 + r, h);
  }
  const size_t len = i0 + R;
  RowsTimesColumns<R>(dO, m.d, vT.data(), s, len, dP);
  for (size_t r = 0; r < R; r++) {
    const size_t n = i0 + r + 1;
    const float* p = f.probs + ((bi * m.nh + h) * s + i0 + r) * s;
    const float rowDot = static_cast<float>(Dot(dP[r], p, n));
    float* dSr = t.dS.get() + (hh * s + i0 + r) * s;
    float* pr = t.p.get() + (hh * s + i0 + r) * s;
    for (size_t j = 0; j < n; j++) {
      dSr[j] = p[j] * (dP[r][j] - rowDot) * scale;
      pr[j] = p[j];
    }
    // the block's product with K (dQ, below) and KeyRows read up to kRows - 1 columns past the diagonal
    std::fill(dSr + n, dSr + std::min(s, n + kRows - 1), 0.0f);
    std::fill(pr + n, pr + std::min(s, n + kRows - 1), 0.0f);
  }
  WeightedRows<R>(dS, len, f.k + m.kv(bi, 0, g), m.nkv * m.d, m.d, dQ);
}

// out rows j0..j0+R-1 (rows of dK or dV) = sum over the group's heads, then over queries i >= j0, of
// w[hh][i][j] x[i] (x: Q or dO of that head, rows of d with stride nh * d).
template <size_t R>
SOFTMAX_INLINE void KeyRows(const Dims& m, const float* w, const float* x, size_t bi, size_t g,
                            size_t j0, float* out) {
  const size_t s = m.s, ld = m.nh * m.d;
  size_t c0 = 0;
  for (; c0 + kBlock <= m.d; c0 += kBlock) {
    F16 acc[R][4] = {};
    for (size_t hh = 0; hh < m.rep(); hh++) {
      const float* xh = x + m.q(bi, 0, g * m.rep() + hh) + c0;
      for (size_t i = j0; i < s; i++) {
        const float* row = xh + i * ld;
        const F16 v[4] = {Load16(row), Load16(row + 16), Load16(row + 32), Load16(row + 48)};
        const float* wi = w + (hh * s + i) * s + j0;
        for (size_t r = 0; r < R; r++) {
          const F16 wr = Broadcast(wi[r]);
          for (int u = 0; u < 4; u++) acc[r][u] += wr * v[u];
        }
      }
    }
    for (size_t r = 0; r < R; r++) std::memcpy(out + m.kv(bi, j0 + r, g) + c0, acc[r], sizeof acc[r]);
  }
  for (; c0 < m.d; c0++)
    for (size_t r = 0; r < R; r++) {
      float sum = 0;
      for (size_t hh = 0; hh < m.rep(); hh++)
        for (size_t i = j0; i < s; i++)
          sum += w[(hh * s + i) * s + j0 + r] * x[m.q(bi, i, g * m.rep() + hh) + c0];
      out[m.kv(bi, j0 + r, g) + c0] = sum;
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void BackwardGroup(const Backward& f, size_t bi,
                                                                                size_t g) {
  const Dims& m = f.m;
  std::vector<float> vT;
  GroupGrads t{std::unique_ptr<float[]>(new float[m.rep() * m.s * m.s]),
               std::unique_ptr<float[]>(new float[m.rep() * m.s * m.s]), std::vector<float>(kRows * (m.s + kBlock))};
  Transpose(f.v + m.kv(bi, 0, g), m.nkv * m.d, m.s, m.d, vT);
  for (size_t hh = 0; hh < m.rep(); hh++) {
    const size_t h = g * m.rep() + hh;
    size_t i = 0;
    for (; i + kRows <= m.s; i += kRows) BackwardRows<kRows>(f, bi, g, h, hh, i, vT, t);
    for (; i < m.s; i++) BackwardRows<1>(f, bi, g, h, hh, i, vT, t);
  }
  size_t j = 0;
  for (; j + kRows <= m.s; j += kRows) {
    KeyRows<kRows>(m, t.dS.get(), f.q, bi, g, j, f.dk);  // dK = dS^T Q
    KeyRows<kRows>(m, t.p.get(), f.dout, bi, g, j, f.dv);  // dV = P^T dO
  }
  for (; j < m.s; j++) {
    KeyRows<1>(m, t.dS.get(), f.q, bi, g, j, f.dk);
    KeyRows<1>(m, t.p.get(), f.dout, bi, g, j, f.dv);
  }
}

Dims ReadDims(const Napi::CallbackInfo& info, size_t at, const char* fn) {
  Dims m{args::Positive(info, at, fn, "batch"), args::Positive(info, at + 1, fn, "seq"),
         args::Positive(info, at + 2, fn, "heads"), args::Positive(info, at + 3, fn, "kvHeads"),
         args::Positive(info, at + 4, fn, "headDim")};
  if (m.nh % m.nkv != 0)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": heads must be a multiple of kvHeads");
  return m;
}

using Named = std::pair<const Napi::Float32Array*, const char*>;

// Each array's length against its layout: q-like [b, s, nh, d], kv-like [b, s, nkv, d], probs [b, nh, s, s].
void CheckShapes(const Napi::CallbackInfo& info, const Dims& m, const char* fn, std::initializer_list<Named> qLike,
                 std::initializer_list<Named> kvLike, const Napi::Float32Array& probs) {
  const auto check = [&](const Named& a, size_t n) {
    if (a.first->ElementLength() != n)
      throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + a.second + " must have " + std::to_string(n) +
                                                  " elements, not " + std::to_string(a.first->ElementLength()));
  };
  for (const Named& a : qLike) check(a, m.b * m.s * m.nh * m.d);
  for (const Named& a : kvLike) check(a, m.b * m.s * m.nkv * m.d);
  check({&probs, "probs"}, m.b * m.nh * m.s * m.s);
}

// Runs fn(bi, g) for every (batch, KV head) on up to `threads` threads.
template <typename Fn>
void EachGroup(const Dims& m, size_t threads, Fn fn) {
  const size_t tasks = m.b * m.nkv;
  args::Split(tasks, std::min(threads, tasks), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; t++) fn(t / m.nkv, t % m.nkv);
  });
}

}  // namespace

// attentionForward(q, k, v, batch, seq, heads, kvHeads, headDim, out, probs, threads)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionForward";
  if (info.Length() != 11) throw Napi::TypeError::New(info.Env(), "attentionForward: expected 11 arguments");
  Napi::Float32Array q = args::Floats(info, 0, fn, "q"), k = args::Floats(info, 1, fn, "k"),
                     v = args::Floats(info, 2, fn, "v"), out = args::Floats(info, 8, fn, "out"),
                     probs = args::Floats(info, 9, fn, "probs");
  const Dims m = ReadDims(info, 3, fn);
  const size_t threads = args::Positive(info, 10, fn, "threads");
  CheckShapes(info, m, fn, {{&q, "q"}, {&out, "out"}}, {{&k, "k"}, {&v, "v"}}, probs);
  const Forward f{q.Data(), k.Data(), v.Data(), out.Data(), probs.Data(), m};
  EachGroup(m, threads, [&](size_t bi, size_t g) { ForwardGroup(f, bi, g); });
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, probs, dout, batch, seq, heads, kvHeads, headDim, dq, dk, dv, threads)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionBackward";
  if (info.Length() != 14) throw Napi::TypeError::New(info.Env(), "attentionBackward: expected 14 arguments");
  Napi::Float32Array q = args::Floats(info, 0, fn, "q"), k = args::Floats(info, 1, fn, "k"),
                     v = args::Floats(info, 2, fn, "v"), probs = args::Floats(info, 3, fn, "probs"),
                     dout = args::Floats(info, 4, fn, "dout"), dq = args::Floats(info, 10, fn, "dq"),
                     dk = args::Floats(info, 11, fn, "dk"), dv = args::Floats(info, 12, fn, "dv");
  const Dims m = ReadDims(info, 5, fn);
  const size_t threads = args::Positive(info, 13, fn, "threads");
  CheckShapes(info, m, fn, {{&q, "q"}, {&dout, "dout"}, {&dq, "dq"}}, {{&k, "k"}, {&v, "v"}, {&dk, "dk"}, {&dv, "dv"}},
              probs);
  const Backward f{q.Data(), k.Data(), v.Data(), probs.Data(), dout.Data(), dq.Data(), dk.Data(), dv.Data(), m};
  EachGroup(m, threads, [&](size_t bi, size_t g) { BackwardGroup(f, bi, g); });
  return info.Env().Undefined();
}
