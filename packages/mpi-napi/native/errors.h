// How the addon reports problems to JavaScript.
//
// - TypeError: an argument of the wrong kind (not a supported TypedArray, mixed dtypes), or an
//   object used in the wrong state (MPI finalized, communicator freed, request waited twice).
// - RangeError: a value out of range (rank, tag, root) or buffers whose lengths do not fit.
// - Error: MPI itself failed; the message is MPI's own error string.
//
// Everything is checked before MPI is called, so bad input never reaches MPI, where it could
// crash the process or leave the other ranks waiting forever.
#pragma once

#include <mpi.h>
#include <napi.h>

#include <string>

namespace mpinapi {

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowMpiError(Napi::Env env, int code, const char* operation);

// MPI's own text for an error code ("MPI_ERR_TRUNCATE: message truncated").
std::string MpiErrorString(int code);

// Every communicator is set to MPI_ERRORS_RETURN, so MPI hands failures back as codes.
inline void CheckMpi(Napi::Env env, int code, const char* operation) {
  if (code != MPI_SUCCESS) ThrowMpiError(env, code, operation);
}

// JS numbers are doubles: reads one that must be a whole number that fits an int.
int IntArg(Napi::Env env, const Napi::Value& value, const char* name);

// A rank of a communicator of `size` ranks: 0 <= rank < size.
int RankArg(Napi::Env env, const Napi::Value& value, const char* name, int size);

// A message tag: 0 <= tag <= MPI_TAG_UB (the largest tag this MPI accepts).
int TagArg(Napi::Env env, const Napi::Value& value);

}  // namespace mpinapi
