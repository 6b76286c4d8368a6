#include "request.h"

#include <vector>

#include "addon.h"
#include "errors.h"

namespace mpinapi {
namespace {
int pending = 0;
}  // namespace

int PendingRequests() { return pending; }

Napi::Function Request::DefineClass(Napi::Env env) {
  return ObjectWrap<Request>::DefineClass(env, "NativeRequest",
                                          {
                                              InstanceMethod<&Request::Wait>("wait"),
                                              InstanceMethod<&Request::Test>("test"),
                                              InstanceAccessor<&Request::Done>("done"),
                                          });
}

Request::Request(const Napi::CallbackInfo& info) : ObjectWrap<Request>(info) {}

Napi::Value Request::Start(Napi::Env env, MPI_Request request, Kind kind, const Buffer& buffer, int divisor,
                           const Waiting& waits, napi_value alsoKeep) {
  Napi::Object object = GetAddonData(env).requestClass.New({});
  Request* self = Unwrap(object);
  self->request_ = request;
  self->kind_ = kind;
  self->buffer_ = buffer;
  self->divisor_ = divisor;
  self->waits_ = waits;
  self->done_ = false;
  self->keepAlive_ = Napi::Persistent(Napi::Value(env, buffer.value));  // strong reference
  if (alsoKeep != nullptr) self->keepAlsoAlive_ = Napi::Persistent(Napi::Value(env, alsoKeep));
  self->Ref();                                                          // and to ourselves
  ++pending;
  return object;
}

Request::Problem Request::Complete(int code, const MPI_Status& status) {
  done_ = true;
  --pending;
  Problem problem;
  if (code != MPI_SUCCESS) {
    problem.message = MpiErrorString(code);
  } else if (kind_ == Kind::kRecv) {
    int received = 0;
    MPI_Get_count(&status, buffer_.type, &received);
    if (received != buffer_.count) {
      problem.isRange = true;
      problem.message = "received " + std::to_string(received) + " elements into a buffer of " +
                        std::to_string(buffer_.count);
    }
  } else if (kind_ == Kind::kAllreduce && divisor_ != 0) {
    DivideInPlace(buffer_, divisor_);
  }
  keepAlive_.Reset();
  keepAlsoAlive_.Reset();
  Unref();
  return problem;
}

void Request::ThrowIf(Napi::Env env, const char* operation, const Problem& problem) {
  if (problem.message.empty()) return;
  std::string message = std::string(operation) + " failed: " + problem.message;
  if (problem.isRange) ThrowRangeError(env, message);
  throw Napi::Error::New(env, message);
}

void Request::Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (waited_) ThrowTypeError(env, "wait() was already called on this request");
  waited_ = true;
  if (done_) return;  // test() already saw it complete
  MPI_Status status;
  int code;
  {
    Watch watch(waits_);
    code = MPI_Wait(&request_, &status);
  }
  ThrowIf(env, "wait", Complete(code, status));
}

Napi::Value Request::Test(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!done_) {
    int flag = 0;
    MPI_Status status;
    int code = MPI_Test(&request_, &flag, &status);
    if (flag || code != MPI_SUCCESS) {
      ThrowIf(env, "test", Complete(code, status));
    }
  }
  return Napi::Boolean::New(env, done_);
}

Napi::Value Request::Done(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), done_); }

Napi::Value WaitAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowTypeError(env, "waitAll expects an array of requests");
  Napi::Array array = info[0].As<Napi::Array>();
  Napi::Function requestClass = GetAddonData(env).requestClass.Value();
  uint32_t n = array.Length();

  // First check every entry, so that a bad one leaves all requests as they were.
  std::vector<Request*> requests;
  requests.reserve(n);
  auto undo = [&requests] {
    for (Request* r : requests) r->waited_ = false;
  };
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value item = array[i];
    if (!item.IsObject() || !item.As<Napi::Object>().InstanceOf(requestClass)) {
      undo();
      ThrowTypeError(env, "waitAll: item " + std::to_string(i) + " is not a request");
    }
    Request* r = Request::Unwrap(item.As<Napi::Object>());
    if (r->waited_) {  // also catches the same request listed twice
      undo();
      ThrowTypeError(env, "waitAll: wait() was already called on request " + std::to_string(i));
    }
    r->waited_ = true;
    requests.push_back(r);
  }

  // MPI_Waitall on the ones still pending (test() may have completed some already).
  std::vector<Request*> waiting;
  std::vector<MPI_Request> handles;
  for (Request* r : requests) {
    if (!r->done_) {
      waiting.push_back(r);
      handles.push_back(r->request_);
    }
  }
  // Nothing left for MPI (possibly finalized since, which makes any MPI call an error).
  if (waiting.empty()) return env.Undefined();
  std::vector<MPI_Status> statuses(handles.size());
  // What it waits for, as far as the collective timeout tells: the first request's peer, and the
  // second's when both are point-to-point on one communicator (a ring step's isend + irecv, whose
  // receive is the one that waits on a stalled rank).
  Waiting waits = waiting[0]->waits_;
  waits.operation = "waitAll";
  if (waiting.size() > 1) {
    const Waiting& second = waiting[1]->waits_;
    bool pointToPoint = waits.peers[0] >= 0 && waits.peers[1] < 0 && second.peers[0] >= 0 && second.peers[1] < 0;
    if (pointToPoint && second.members == waits.members) waits.peers[1] = second.peers[0];
  }
  int code;
  {
    Watch watch(waits);
    code = MPI_Waitall(static_cast<int>(handles.size()), handles.data(), statuses.data());
  }
  Request::Problem first;
  for (size_t i = 0; i < waiting.size(); ++i) {
    // On failure MPI reports each request's own code in its status (MPI_ERR_IN_STATUS).
    int own = code == MPI_SUCCESS ? MPI_SUCCESS : code == MPI_ERR_IN_STATUS ? statuses[i].MPI_ERROR : code;
    Request::Problem problem = waiting[i]->Complete(own, statuses[i]);
    if (first.message.empty()) first = problem;
  }
  Request::ThrowIf(env, "waitAll", first);
  return env.Undefined();
}

}  // namespace mpinapi
