#include "buffer.h"

#include <climits>
#include <cstdint>
#include <string>

#include "errors.h"

namespace mpinapi {
namespace {

const char* KindName(napi_typedarray_type kind) {
  switch (kind) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

template <typename T>
void Divide(void* data, int count, int divisor) {
  T* values = static_cast<T*>(data);
  for (int i = 0; i < count; ++i) values[i] /= static_cast<T>(divisor);
}

}  // namespace

Buffer GetBuffer(Napi::Env env, const Napi::Value& value, const char* name) {
  Buffer buffer;
  buffer.value = value;
  size_t length = 0;
  napi_value arrayBuffer;
  size_t byteOffset;
  // One call gives everything. napi also moves a small TypedArray that V8 keeps inside its
  // heap (where the garbage collector could move it) out to a fixed place, so the pointer
  // stays valid for as long as the array lives: non-blocking operations depend on that.
  if (napi_get_typedarray_info(env, value, &buffer.kind, &length, &buffer.data, &arrayBuffer,
                               &byteOffset) != napi_ok) {
    ThrowTypeError(env, std::string(name) +
                            " must be a Float32Array, Float64Array, Int32Array or BigInt64Array");
  }
  size_t elementSize;
  switch (buffer.kind) {
    case napi_float32_array: buffer.type = MPI_FLOAT; elementSize = 4; break;
    case napi_float64_array: buffer.type = MPI_DOUBLE; elementSize = 8; break;
    case napi_int32_array: buffer.type = MPI_INT32_T; elementSize = 4; break;
    case napi_bigint64_array: buffer.type = MPI_INT64_T; elementSize = 8; break;
    default:
      ThrowTypeError(env, std::string(name) + " is a " + KindName(buffer.kind) +
                              "; expected a Float32Array, Float64Array, Int32Array or BigInt64Array");
  }
  if (length > static_cast<size_t>(INT_MAX)) {
    ThrowRangeError(env, std::string(name) + " has " + std::to_string(length) +
                             " elements; MPI counts stop at " + std::to_string(INT_MAX));
  }
  // A transferred (structuredClone, postMessage) ArrayBuffer leaves its views detached: they
  // read as empty, and an empty buffer here against full ones on the other ranks would make
  // the collective fail or wait forever.
  bool detached = false;
  if (length == 0 && napi_is_detached_arraybuffer(env, arrayBuffer, &detached) == napi_ok && detached) {
    ThrowTypeError(env, std::string(name) + "'s ArrayBuffer was detached (transferred); it holds no data");
  }
  buffer.count = static_cast<int>(length);
  buffer.bytes = length * elementSize;
  return buffer;
}

void RequireSameKind(Napi::Env env, const Buffer& a, const Buffer& b) {
  if (a.kind != b.kind) {
    ThrowTypeError(env, std::string("mixed dtypes: ") + KindName(a.kind) + " and " + KindName(b.kind));
  }
}

void RequireDisjoint(Napi::Env env, const Buffer& a, const Buffer& b) {
  auto start = [](const Buffer& x) { return reinterpret_cast<uintptr_t>(x.data); };
  if (a.bytes > 0 && b.bytes > 0 && start(a) < start(b) + b.bytes && start(b) < start(a) + a.bytes) {
    ThrowRangeError(env, "the send and receive buffers overlap");
  }
}

ReduceOp GetReduceOp(Napi::Env env, const Napi::Value& value, const Buffer& buffer) {
  int code = IntArg(env, value, "op");
  if (code < 0 || code > 3) ThrowRangeError(env, "unknown reduce op " + std::to_string(code));
  ReduceOp op = static_cast<ReduceOp>(code);
  if (op == ReduceOp::kAvg && buffer.kind != napi_float32_array && buffer.kind != napi_float64_array) {
    ThrowTypeError(env, std::string("\"avg\" needs a Float32Array or Float64Array, got ") + KindName(buffer.kind));
  }
  return op;
}

MPI_Op ToMpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
    default: return MPI_SUM;  // kSum, and kAvg before its division
  }
}

void DivideInPlace(const Buffer& buffer, int divisor) {
  if (buffer.kind == napi_float32_array) Divide<float>(buffer.data, buffer.count, divisor);
  else Divide<double>(buffer.data, buffer.count, divisor);
}

}  // namespace mpinapi
