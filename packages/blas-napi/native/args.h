// What the addon's functions share: checking their arguments (a one-line error naming the function and
// the argument) and splitting a loop over threads.
#pragma once
#include <napi.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

namespace args {

template <typename Array>
Array Typed(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* fn, const char* name,
            const char* typeName) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a " + typeName);
  return info[i].As<Array>();
}

inline Napi::Float32Array Floats(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return Typed<Napi::Float32Array>(info, i, napi_float32_array, fn, name, "Float32Array");
}

inline Napi::Float64Array Doubles(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return Typed<Napi::Float64Array>(info, i, napi_float64_array, fn, name, "Float64Array");
}

inline size_t Positive(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  int64_t v = info[i].IsNumber() ? info[i].As<Napi::Number>().Int64Value() : 0;
  if (v < 1) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + name + " must be a positive integer");
  return static_cast<size_t>(v);
}

// The common length of the arrays, else a one-line error naming the function.
inline size_t SameLength(const Napi::CallbackInfo& info, std::initializer_list<const Napi::Float32Array*> arrays,
                         const char* fn) {
  const size_t n = (*arrays.begin())->ElementLength();
  for (const auto* a : arrays)
    if (a->ElementLength() != n)
      throw Napi::RangeError::New(info.Env(), std::string(fn) + ": the arrays must have the same length");
  return n;
}

// The threads worth starting for `work` units, at most `threads`: below `minPerThread` units a thread, starting
// one costs more than it saves.
inline size_t Useful(size_t threads, size_t work, size_t minPerThread) {
  return std::min(threads, std::max<size_t>(1, work / minPerThread));
}

// Runs fn(begin, end) over [0, n) in `threads` contiguous parts, each a multiple of `align` long (so that
// no two threads write the same cache line); the calling thread takes the first.
inline void Split(size_t n, size_t threads, const std::function<void(size_t, size_t)>& fn, size_t align = 1) {
  const size_t per = ((n + threads - 1) / threads + align - 1) / align * align;
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads && t * per < n; t++) pool.emplace_back(fn, t * per, std::min(n, (t + 1) * per));
  fn(0, std::min(n, per));
  for (auto& th : pool) th.join();
}

}  // namespace args
