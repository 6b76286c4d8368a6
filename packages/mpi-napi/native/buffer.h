// A TypedArray seen as an MPI buffer: pointer, element count and MPI datatype.
//
// MPI reads and writes the TypedArray's memory directly (zero-copy). The pointer already
// includes the view's byteOffset, so a subarray() of a larger buffer works as expected.
#pragma once

#include <mpi.h>
#include <napi.h>

#include <cstddef>

namespace mpinapi {

struct Buffer {
  napi_value value;  // the TypedArray itself, for requests that must keep it alive
  void* data;
  int count;  // elements; MPI counts are ints
  size_t bytes;
  napi_typedarray_type kind;
  MPI_Datatype type;
};

// Reads argument `name`: a Float32Array, Float64Array, Int32Array or BigInt64Array.
Buffer GetBuffer(Napi::Env env, const Napi::Value& value, const char* name);

// Collectives combine buffers of one dtype: `b` must have the dtype of `a`.
void RequireSameKind(Napi::Env env, const Buffer& a, const Buffer& b);

// MPI forbids a send buffer that overlaps the receive buffer (the result would be garbage).
void RequireDisjoint(Napi::Env env, const Buffer& a, const Buffer& b);

// The reductions; "avg" is MPI_SUM followed by a division (MPI has no average).
enum class ReduceOp { kSum = 0, kMax = 1, kMin = 2, kAvg = 3 };

// Reads the reduction code and checks it makes sense for the buffer's dtype.
ReduceOp GetReduceOp(Napi::Env env, const Napi::Value& value, const Buffer& buffer);
MPI_Op ToMpiOp(ReduceOp op);

// Divides every element by `divisor` (completes an "avg"; only float dtypes get here).
void DivideInPlace(const Buffer& buffer, int divisor);

}  // namespace mpinapi
