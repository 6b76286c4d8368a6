#include "errors.h"

#include <climits>
#include <cmath>

#include "runtime.h"

namespace mpinapi {

void ThrowTypeError(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

void ThrowMpiError(Napi::Env env, int code, const char* operation) {
  throw Napi::Error::New(env, std::string(operation) + " failed: " + MpiErrorString(code));
}

std::string MpiErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS || length <= 0) {
    return "MPI error " + std::to_string(code);
  }
  return std::string(text, length);
}

int IntArg(Napi::Env env, const Napi::Value& value, const char* name) {
  if (!value.IsNumber()) ThrowTypeError(env, std::string(name) + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (std::trunc(number) != number || number < INT_MIN || number > INT_MAX) {
    ThrowRangeError(env, std::string(name) + " must be an integer that fits 32 bits, got " +
                             value.ToString().Utf8Value());
  }
  return static_cast<int>(number);
}

int RankArg(Napi::Env env, const Napi::Value& value, const char* name, int size) {
  int rank = IntArg(env, value, name);
  if (rank < 0 || rank >= size) {
    ThrowRangeError(env, std::string(name) + " " + std::to_string(rank) +
                             " is out of range for a communicator of " + std::to_string(size) +
                             " ranks");
  }
  return rank;
}

int TagArg(Napi::Env env, const Napi::Value& value) {
  int tag = IntArg(env, value, "tag");
  if (tag < 0 || tag > TagUpperBound()) {
    ThrowRangeError(env, "tag " + std::to_string(tag) + " is out of range 0.." +
                             std::to_string(TagUpperBound()));
  }
  return tag;
}

}  // namespace mpinapi
