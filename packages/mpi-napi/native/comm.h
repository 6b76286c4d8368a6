// A communicator (MPI_Comm): a group of ranks that talk among themselves, as a JS object.
//
// Methods take their arguments in the order of the TS API (src/comm.ts), with every default
// already filled in and reduce ops as numbers (see ReduceOp in buffer.h).
#pragma once

#include <mpi.h>
#include <napi.h>

#include "watchdog.h"

namespace mpinapi {

class Comm : public Napi::ObjectWrap<Comm> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // Wraps `comm`; `owned` communicators were created by us and may be freed.
  static Napi::Object NewInstance(Napi::Env env, MPI_Comm comm, bool owned);

  explicit Comm(const Napi::CallbackInfo& info);

  const Members* members() const { return members_; }

 private:
  // The live handle, or a TypeError if MPI was finalized or the communicator freed.
  MPI_Comm Handle(Napi::Env env);
  // Wraps a communicator MPI just created for us (MPI_COMM_NULL: this rank is not in it).
  Napi::Value Adopt(Napi::Env env, MPI_Comm created);

  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  void Barrier(const Napi::CallbackInfo& info);
  void Allreduce(const Napi::CallbackInfo& info);
  void AllreduceInto(const Napi::CallbackInfo& info);
  Napi::Value Iallreduce(const Napi::CallbackInfo& info);
  void Allgather(const Napi::CallbackInfo& info);
  void ReduceScatter(const Napi::CallbackInfo& info);
  Napi::Value IreduceScatter(const Napi::CallbackInfo& info);
  void Broadcast(const Napi::CallbackInfo& info);
  void Send(const Napi::CallbackInfo& info);
  void Recv(const Napi::CallbackInfo& info);
  Napi::Value Isend(const Napi::CallbackInfo& info);
  Napi::Value Irecv(const Napi::CallbackInfo& info);
  void Sendrecv(const Napi::CallbackInfo& info);
  Napi::Value Split(const Napi::CallbackInfo& info);
  Napi::Value CreateGroup(const Napi::CallbackInfo& info);
  void Free(const Napi::CallbackInfo& info);
  void Abort(const Napi::CallbackInfo& info);

  // What a blocking call of this communicator waits for (see watchdog.h): comm ranks `a` and
  // `b`, or (both -1) every other member.
  Waiting Waits(const char* operation, int a = -1, int b = -1) const { return Waiting{operation, members_, {a, b}}; }

  MPI_Comm comm_ = MPI_COMM_NULL;
  const Members* members_ = nullptr;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 0;
};

}  // namespace mpinapi
