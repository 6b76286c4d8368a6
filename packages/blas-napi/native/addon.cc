// A thin N-API wrapper over OpenBLAS: one row-major SGEMM, the thread count, and what OpenBLAS chose at
// load time (its core, e.g. "SkylakeX", picked from the CPU or from OPENBLAS_CORETYPE); beside them, the
// training step's other loops, each in its own native/*.cc. src/index.ts describes these exports.
#include <napi.h>
#include <cblas.h>

#include "adamw.h"
#include "add.h"
#include "args.h"
#include "attention.h"
#include "cross_entropy.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"

#include <string>

namespace {

uint32_t Dim(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("sgemm: ") + name + " must be a number");
  int64_t v = info[i].As<Napi::Number>().Int64Value();
  if (v < 0 || v > 0x7fffffff) throw Napi::RangeError::New(info.Env(), std::string("sgemm: bad ") + name);
  return static_cast<uint32_t>(v);
}

// Elements a row-major matrix of `rows` x `cols` with leading dimension `ld` spans.
size_t Span(uint32_t rows, uint32_t cols, uint32_t ld) {
  return rows == 0 || cols == 0 ? 0 : static_cast<size_t>(rows - 1) * ld + cols;
}

// sgemm(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc): C[m, n] = op(A) op(B) + beta C, row-major,
// where op(A) is [m, k] (A is [k, m] when transposed) and op(B) is [k, n] (B is [n, k] when transposed).
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 12) throw Napi::TypeError::New(env, "sgemm: expected 12 arguments");
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  uint32_t m = Dim(info, 2, "m"), n = Dim(info, 3, "n"), k = Dim(info, 4, "k");
  Napi::Float32Array a = args::Floats(info, 5, "sgemm", "a");
  uint32_t lda = Dim(info, 6, "lda");
  Napi::Float32Array b = args::Floats(info, 7, "sgemm", "b");
  uint32_t ldb = Dim(info, 8, "ldb");
  float beta = info[9].As<Napi::Number>().FloatValue();
  Napi::Float32Array c = args::Floats(info, 10, "sgemm", "c");
  uint32_t ldc = Dim(info, 11, "ldc");
  // The stored matrices' shapes: A is [m, k] or [k, m]; B is [k, n] or [n, k].
  uint32_t aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
  if (lda < aCols || ldb < bCols || ldc < n) throw Napi::RangeError::New(env, "sgemm: a leading dimension is too small");
  if (a.ElementLength() < Span(aRows, aCols, lda) || b.ElementLength() < Span(bRows, bCols, ldb) ||
      c.ElementLength() < Span(m, n, ldc))
    throw Napi::RangeError::New(env, "sgemm: an array is too small for its matrix");
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
              a.Data(), lda, b.Data(), ldb, beta, c.Data(), ldc);
  return env.Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: expected a positive integer");
  openblas_set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value CoreName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), openblas_get_corename());
}

Napi::Value Config(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), openblas_get_config());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm, "sgemm"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("coreName", Napi::Function::New(env, CoreName, "coreName"));
  exports.Set("config", Napi::Function::New(env, Config, "config"));
  exports.Set("adamw", Napi::Function::New(env, AdamW, "adamw"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsNormForward, "rmsnormForward"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsNormBackward, "rmsnormBackward"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("add", Napi::Function::New(env, Add, "add"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  return exports;
}

}  // namespace

NODE_API_MODULE(blas_napi, Init)
