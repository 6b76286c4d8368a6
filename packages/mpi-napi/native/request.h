// A non-blocking operation in flight (MPI_Request), as a JS object with wait() and test().
//
// MPI keeps writing into (or reading from) the TypedArray until the operation completes, long
// after isend/irecv/iallreduce returned. If JS dropped its last reference to the array, the
// garbage collector could free that memory under MPI's feet. So a pending Request holds a
// strong reference to its array, and also to itself (a request nobody holds can't be GC'd
// while MPI still uses its buffer). Both are released when MPI reports completion.
#pragma once

#include <mpi.h>
#include <napi.h>

#include <string>

#include "buffer.h"
#include "watchdog.h"

namespace mpinapi {

class Request : public Napi::ObjectWrap<Request> {
 public:
  // What to do when the operation completes.
  enum class Kind {
    kSend,
    kRecv,       // check that the message filled the buffer exactly
    kAllreduce,  // divide by `divisor` when it is not 0 (the second half of "avg")
  };

  static Napi::Function DefineClass(Napi::Env env);
  // Wraps an operation that MPI has just started on `buffer`.
  // `waits` says what a wait() on it waits for (for the collective timeout); `alsoKeep`, when given, is a
  // second array MPI reads until completion (ireduceScatter's send).
  static Napi::Value Start(Napi::Env env, MPI_Request request, Kind kind, const Buffer& buffer, int divisor,
                           const Waiting& waits, napi_value alsoKeep = nullptr);

  explicit Request(const Napi::CallbackInfo& info);

 private:
  friend Napi::Value WaitAll(const Napi::CallbackInfo& info);

  void Wait(const Napi::CallbackInfo& info);
  Napi::Value Test(const Napi::CallbackInfo& info);
  Napi::Value Done(const Napi::CallbackInfo& info);

  // What went wrong with a completed operation. A message shorter than its buffer is the
  // caller's mistake, a RangeError as with the blocking recv; the rest are MPI's failures.
  struct Problem {
    bool isRange = false;
    std::string message;  // empty: nothing went wrong
  };

  // Called once, when MPI says the operation is over: releases the references and finishes
  // the operation's work. Returns what went wrong instead of throwing, so that waitAll can
  // complete all its requests before reporting.
  Problem Complete(int code, const MPI_Status& status);
  // Throws `problem` (if any) as a JS error whose message starts with `operation`.
  static void ThrowIf(Napi::Env env, const char* operation, const Problem& problem);

  MPI_Request request_ = MPI_REQUEST_NULL;
  Napi::Reference<Napi::Value> keepAlive_;
  Napi::Reference<Napi::Value> keepAlsoAlive_;
  Buffer buffer_{};
  Kind kind_ = Kind::kSend;
  int divisor_ = 0;
  Waiting waits_{"wait", nullptr, {-1, -1}};
  bool done_ = true;  // a Request made by `new` from JS (not by Start) has nothing to wait for
  bool waited_ = false;
};

// How many requests MPI still works on; finalize() refuses to run while some are.
int PendingRequests();

// waitAll(requests): MPI_Waitall on requests that have not been waited for.
Napi::Value WaitAll(const Napi::CallbackInfo& info);

}  // namespace mpinapi
