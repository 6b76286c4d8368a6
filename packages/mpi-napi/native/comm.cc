#include "comm.h"

#include <string>
#include <vector>

#include "addon.h"
#include "buffer.h"
#include "errors.h"
#include "request.h"
#include "runtime.h"

namespace mpinapi {
namespace {

// What NewInstance hands the constructor (JS code cannot make one of these).
struct CommInit {
  MPI_Comm comm;
  bool owned;
};

// A message that came in shorter than the buffer is almost always a bug in the caller (the
// two ranks disagree about a shape), so recv insists on an exact fit. A longer one is
// already an MPI error (MPI_ERR_TRUNCATE).
void RequireFilled(Napi::Env env, const MPI_Status& status, const Buffer& buffer) {
  int received = 0;
  MPI_Get_count(&status, buffer.type, &received);
  if (received != buffer.count) {
    ThrowRangeError(env, "received " + std::to_string(received) + " elements into a buffer of " +
                             std::to_string(buffer.count));
  }
}

// The world rank of each member, so that the collective timeout can name the ranks a call waits for.
const Members* WorldRanksOf(Napi::Env env, MPI_Comm comm, int size) {
  Members ranks(size), world(size);
  for (int i = 0; i < size; ++i) ranks[i] = i;
  MPI_Group group, worldGroup;
  CheckMpi(env, MPI_Comm_group(comm, &group), "MPI_Comm_group");
  MPI_Comm_group(MPI_COMM_WORLD, &worldGroup);
  int code = MPI_Group_translate_ranks(group, size, ranks.data(), worldGroup, world.data());
  MPI_Group_free(&group);
  MPI_Group_free(&worldGroup);
  CheckMpi(env, code, "MPI_Group_translate_ranks");
  return KeepMembers(std::move(world));
}

}  // namespace

Napi::Function Comm::DefineClass(Napi::Env env) {
  return ObjectWrap<Comm>::DefineClass(env, "NativeComm",
                                       {
                                           InstanceAccessor<&Comm::Rank>("rank"),
                                           InstanceAccessor<&Comm::Size>("size"),
                                           InstanceMethod<&Comm::Barrier>("barrier"),
                                           InstanceMethod<&Comm::Allreduce>("allreduce"),
                                           InstanceMethod<&Comm::AllreduceInto>("allreduceInto"),
                                           InstanceMethod<&Comm::Iallreduce>("iallreduce"),
                                           InstanceMethod<&Comm::Allgather>("allgather"),
                                           InstanceMethod<&Comm::ReduceScatter>("reduceScatter"),
                                           InstanceMethod<&Comm::IreduceScatter>("ireduceScatter"),
                                           InstanceMethod<&Comm::Broadcast>("broadcast"),
                                           InstanceMethod<&Comm::Send>("send"),
                                           InstanceMethod<&Comm::Recv>("recv"),
                                           InstanceMethod<&Comm::Isend>("isend"),
                                           InstanceMethod<&Comm::Irecv>("irecv"),
                                           InstanceMethod<&Comm::Sendrecv>("sendrecv"),
                                           InstanceMethod<&Comm::Split>("split"),
                                           InstanceMethod<&Comm::CreateGroup>("createGroup"),
                                           InstanceMethod<&Comm::Free>("free"),
                                           InstanceMethod<&Comm::Abort>("abort"),
                                       });
}

Napi::Object Comm::NewInstance(Napi::Env env, MPI_Comm comm, bool owned) {
  CommInit init{comm, owned};
  return GetAddonData(env).commClass.New({Napi::External<CommInit>::New(env, &init)});
}

Comm::Comm(const Napi::CallbackInfo& info) : ObjectWrap<Comm>(info) {
  if (!info[0].IsExternal()) return;  // `new` from JS: a dead handle that every method rejects
  const CommInit* init = info[0].As<Napi::External<CommInit>>().Data();
  comm_ = init->comm;
  owned_ = init->owned;
  CheckMpi(info.Env(), MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  CheckMpi(info.Env(), MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  members_ = WorldRanksOf(info.Env(), comm_, size_);
}

MPI_Comm Comm::Handle(Napi::Env env) {
  RequireRunning(env);
  if (comm_ == MPI_COMM_NULL) ThrowTypeError(env, "this communicator was freed");
  return comm_;
}

Napi::Value Comm::Adopt(Napi::Env env, MPI_Comm created) {
  if (created == MPI_COMM_NULL) return env.Null();
  // The standard says new communicators inherit the error handler; we make sure of it.
  CheckMpi(env, MPI_Comm_set_errhandler(created, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return NewInstance(env, created, /*owned=*/true);
}

Napi::Value Comm::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rank_); }
Napi::Value Comm::Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), size_); }

void Comm::Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Watch watch(Waits("barrier"));
  CheckMpi(env, MPI_Barrier(comm), "barrier");
}

// allreduce(buf, op): every rank ends with the reduction of all ranks' buf, in place.
void Comm::Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  ReduceOp op = GetReduceOp(env, info[1], buf);
  {
    Watch watch(Waits("allreduce"));
    CheckMpi(env, MPI_Allreduce(MPI_IN_PLACE, buf.data, buf.count, buf.type, ToMpiOp(op), comm), "allreduce");
  }
  if (op == ReduceOp::kAvg) DivideInPlace(buf, size_);
}

// allreduceInto(send, recv, op): the same, leaving `send` untouched.
void Comm::AllreduceInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer send = GetBuffer(env, info[0], "send");
  Buffer recv = GetBuffer(env, info[1], "recv");
  RequireSameKind(env, send, recv);
  if (send.count != recv.count) {
    ThrowRangeError(env, "allreduceInto: send has " + std::to_string(send.count) + " elements, recv " +
                             std::to_string(recv.count));
  }
  RequireDisjoint(env, send, recv);
  ReduceOp op = GetReduceOp(env, info[2], recv);
  {
    Watch watch(Waits("allreduce"));
    CheckMpi(env, MPI_Allreduce(send.data, recv.data, recv.count, recv.type, ToMpiOp(op), comm), "allreduce");
  }
  if (op == ReduceOp::kAvg) DivideInPlace(recv, size_);
}

// ireduceScatter(send, recv, op) -> Request: reduceScatter in the background. The request keeps both
// arrays alive; recv holds this rank's block (divided by the size for "avg") once it completes.
Napi::Value Comm::IreduceScatter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer send = GetBuffer(env, info[0], "send");
  Buffer recv = GetBuffer(env, info[1], "recv");
  RequireSameKind(env, send, recv);
  if (static_cast<long long>(recv.count) * size_ != send.count) {
    ThrowRangeError(env, "ireduceScatter: send must hold size x recv = " + std::to_string(size_) + " x " +
                             std::to_string(recv.count) + " elements, it has " + std::to_string(send.count));
  }
  RequireDisjoint(env, send, recv);
  ReduceOp op = GetReduceOp(env, info[2], recv);
  MPI_Request request;
  CheckMpi(env,
           MPI_Ireduce_scatter_block(send.data, recv.data, recv.count, recv.type, ToMpiOp(op), comm, &request),
           "ireduceScatter");
  return Request::Start(env, request, Request::Kind::kAllreduce, recv, op == ReduceOp::kAvg ? size_ : 0,
                        Waits("wait (ireduceScatter)"), send.value);
}

// iallreduce(buf, op) -> Request: allreduce in place in the background.
Napi::Value Comm::Iallreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  ReduceOp op = GetReduceOp(env, info[1], buf);
  MPI_Request request;
  CheckMpi(env, MPI_Iallreduce(MPI_IN_PLACE, buf.data, buf.count, buf.type, ToMpiOp(op), comm, &request),
           "iallreduce");
  return Request::Start(env, request, Request::Kind::kAllreduce, buf, op == ReduceOp::kAvg ? size_ : 0,
                        Waits("wait (iallreduce)"));
}

// allgather(send, recv): recv = concatenation of every rank's send, in rank order.
void Comm::Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer send = GetBuffer(env, info[0], "send");
  Buffer recv = GetBuffer(env, info[1], "recv");
  RequireSameKind(env, send, recv);
  if (static_cast<long long>(send.count) * size_ != recv.count) {
    ThrowRangeError(env, "allgather: recv must hold size x send = " + std::to_string(size_) + " x " +
                             std::to_string(send.count) + " elements, it has " + std::to_string(recv.count));
  }
  // When send is exactly this rank's slot of recv, MPI can skip copying it (MPI_IN_PLACE).
  const char* slot = static_cast<const char*>(recv.data) + rank_ * send.bytes;
  Watch watch(Waits("allgather"));
  if (send.bytes > 0 && send.data == slot) {
    CheckMpi(env, MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv.data, send.count, recv.type, comm),
             "allgather");
    return;
  }
  RequireDisjoint(env, send, recv);
  CheckMpi(env, MPI_Allgather(send.data, send.count, send.type, recv.data, send.count, recv.type, comm),
           "allgather");
}

// reduceScatter(send, recv, op): reduce send over all ranks; rank r keeps the r-th block.
void Comm::ReduceScatter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer send = GetBuffer(env, info[0], "send");
  Buffer recv = GetBuffer(env, info[1], "recv");
  RequireSameKind(env, send, recv);
  if (static_cast<long long>(recv.count) * size_ != send.count) {
    ThrowRangeError(env, "reduceScatter: send must hold size x recv = " + std::to_string(size_) + " x " +
                             std::to_string(recv.count) + " elements, it has " + std::to_string(send.count));
  }
  RequireDisjoint(env, send, recv);
  ReduceOp op = GetReduceOp(env, info[2], recv);
  {
    Watch watch(Waits("reduceScatter"));
    CheckMpi(env, MPI_Reduce_scatter_block(send.data, recv.data, recv.count, recv.type, ToMpiOp(op), comm),
             "reduceScatter");
  }
  if (op == ReduceOp::kAvg) DivideInPlace(recv, size_);
}

// broadcast(buf, root): every rank's buf becomes root's.
void Comm::Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  int root = RankArg(env, info[1], "root", size_);
  Watch watch(Waits("broadcast"));
  CheckMpi(env, MPI_Bcast(buf.data, buf.count, buf.type, root, comm), "broadcast");
}

// Blocking send or recv with oneself can only hang (nobody else will post the other half).
static void RequireNotSelf(Napi::Env env, int peer, int self, const char* what) {
  if (peer == self) {
    ThrowRangeError(env, std::string(what) + " with this rank's own rank " + std::to_string(self) +
                             " would wait forever; use sendrecv or isend/irecv");
  }
}

// send(buf, dest, tag)
void Comm::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  int dest = RankArg(env, info[1], "dest", size_);
  int tag = TagArg(env, info[2]);
  RequireNotSelf(env, dest, rank_, "send");
  Watch watch(Waits("send", dest));
  CheckMpi(env, MPI_Send(buf.data, buf.count, buf.type, dest, tag, comm), "send");
}

// recv(buf, source, tag)
void Comm::Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  int source = RankArg(env, info[1], "source", size_);
  int tag = TagArg(env, info[2]);
  RequireNotSelf(env, source, rank_, "recv");
  MPI_Status status;
  {
    Watch watch(Waits("recv", source));
    CheckMpi(env, MPI_Recv(buf.data, buf.count, buf.type, source, tag, comm, &status), "recv");
  }
  RequireFilled(env, status, buf);
}

// isend(buf, dest, tag) -> Request
Napi::Value Comm::Isend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  int dest = RankArg(env, info[1], "dest", size_);
  int tag = TagArg(env, info[2]);
  MPI_Request request;
  CheckMpi(env, MPI_Isend(buf.data, buf.count, buf.type, dest, tag, comm, &request), "isend");
  return Request::Start(env, request, Request::Kind::kSend, buf, 0, Waits("wait (isend)", dest));
}

// irecv(buf, source, tag) -> Request
Napi::Value Comm::Irecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer buf = GetBuffer(env, info[0], "buf");
  int source = RankArg(env, info[1], "source", size_);
  int tag = TagArg(env, info[2]);
  MPI_Request request;
  CheckMpi(env, MPI_Irecv(buf.data, buf.count, buf.type, source, tag, comm, &request), "irecv");
  return Request::Start(env, request, Request::Kind::kRecv, buf, 0, Waits("wait (irecv)", source));
}

// sendrecv(sendBuf, dest, recvBuf, source, tag): both at once, so two ranks can swap data
// without deadlocking on each other's send (the pipeline-parallel exchange).
void Comm::Sendrecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  Buffer send = GetBuffer(env, info[0], "sendBuf");
  int dest = RankArg(env, info[1], "dest", size_);
  Buffer recv = GetBuffer(env, info[2], "recvBuf");
  int source = RankArg(env, info[3], "source", size_);
  int tag = TagArg(env, info[4]);
  RequireDisjoint(env, send, recv);
  MPI_Status status;
  Watch watch(Waits("sendrecv", dest, source));
  CheckMpi(env,
           MPI_Sendrecv(send.data, send.count, send.type, dest, tag, recv.data, recv.count, recv.type, source,
                        tag, comm, &status),
           "sendrecv");
  RequireFilled(env, status, recv);
}

// split(color, key) -> Comm | null: ranks that pass the same color form one communicator,
// ordered by key. color null (MPI_UNDEFINED) joins none. Collective: every rank calls it.
Napi::Value Comm::Split(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  int color = MPI_UNDEFINED;
  if (!info[0].IsNull()) {
    color = IntArg(env, info[0], "color");
    if (color < 0) ThrowRangeError(env, "color must be >= 0 (or null to join no communicator)");
  }
  int key = IntArg(env, info[1], "key");
  MPI_Comm created;
  Watch watch(Waits("split"));
  CheckMpi(env, MPI_Comm_split(comm, color, key, &created), "split");
  return Adopt(env, created);
}

// createGroup(ranks) -> Comm | null: a communicator of the listed ranks, in list order
// (MPI_Comm_create). Collective like torch's new_group: every rank calls it with the same
// list, and the ranks outside it get null.
Napi::Value Comm::CreateGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  if (!info[0].IsArray()) ThrowTypeError(env, "createGroup expects an array of ranks");
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t n = list.Length();
  if (n == 0 || n > static_cast<uint32_t>(size_)) {
    ThrowRangeError(env, "createGroup needs 1 to " + std::to_string(size_) + " ranks, got " + std::to_string(n));
  }
  std::vector<int> ranks(n);
  std::vector<bool> seen(size_, false);
  for (uint32_t i = 0; i < n; ++i) {
    ranks[i] = RankArg(env, list[i], "rank", size_);
    if (seen[ranks[i]]) ThrowRangeError(env, "rank " + std::to_string(ranks[i]) + " is listed twice");
    seen[ranks[i]] = true;
  }
  MPI_Group all, group;
  CheckMpi(env, MPI_Comm_group(comm, &all), "MPI_Comm_group");
  int code = MPI_Group_incl(all, static_cast<int>(n), ranks.data(), &group);
  MPI_Group_free(&all);
  CheckMpi(env, code, "MPI_Group_incl");
  MPI_Comm created;
  {
    Watch watch(Waits("createGroup"));
    code = MPI_Comm_create(comm, group, &created);
  }
  MPI_Group_free(&group);
  CheckMpi(env, code, "createGroup");
  return Adopt(env, created);
}

// free(): releases a communicator made by split or createGroup.
void Comm::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MPI_Comm comm = Handle(env);
  if (!owned_) ThrowTypeError(env, "the world communicator cannot be freed");
  CheckMpi(env, MPI_Comm_free(&comm), "free");
  comm_ = MPI_COMM_NULL;
}

// abort(code): ends every rank of the job (OpenMPI aborts the world whatever the comm).
// Returns only if MPI is not running, and then the JS side exits this process alone.
void Comm::Abort(const Napi::CallbackInfo& info) {
  int code = IntArg(info.Env(), info[0], "code");
  if (IsRunning()) MPI_Abort(comm_ == MPI_COMM_NULL ? MPI_COMM_WORLD : comm_, code);
}

}  // namespace mpinapi
