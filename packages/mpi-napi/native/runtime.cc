#include "runtime.h"

#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "comm.h"
#include "errors.h"
#include "request.h"
#include "watchdog.h"

namespace mpinapi {
namespace {

enum class State { kNotStarted, kRunning, kFinalized };
State state = State::kNotStarted;  // MPI is per process, so this is too
int tagUpperBound = 32767;  // the least MPI guarantees, until init reads the real one
const Members* worldMembers = nullptr;

// Every rank's host name, so that a rank that times out can say where the ranks it waits
// for run (one allgather at start-up), then the watchdog thread.
void StartWatchdog(Napi::Env env) {
  int rank = 0, size = 1, length = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  MPI_Get_processor_name(name, &length);
  std::vector<char> all(static_cast<size_t>(size) * MPI_MAX_PROCESSOR_NAME);
  CheckMpi(env,
           MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                         MPI_COMM_WORLD),
           "allgather of host names");
  std::vector<std::string> hosts;
  for (int i = 0; i < size; ++i) {
    const char* start = all.data() + static_cast<size_t>(i) * MPI_MAX_PROCESSOR_NAME;
    hosts.emplace_back(start, strnlen(start, MPI_MAX_PROCESSOR_NAME));
  }
  Members world(size);
  for (int i = 0; i < size; ++i) world[i] = i;
  worldMembers = KeepMembers(std::move(world));
  mpinapi::StartWatchdog(rank, std::move(hosts));
}

// setCollectiveTimeout(seconds): 0 turns the timeout off (checked in JS).
void SetTimeout(const Napi::CallbackInfo& info) { SetCollectiveTimeout(info[0].As<Napi::Number>().DoubleValue()); }

Napi::Value GetTimeout(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), CollectiveTimeout()); }

// init() -> the world communicator. Calling it again returns a new handle on the same world.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state == State::kFinalized) ThrowTypeError(env, "MPI was finalized and cannot start again");
  if (state == State::kNotStarted) {
    // FUNNELED: the process may have threads (Node has several), but only the thread that
    // called init talks to MPI. The JS layer makes sure that is the main thread.
    int provided;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      throw Napi::Error::New(env, "MPI_Init_thread failed");
    }
    state = State::kRunning;
    // By default an MPI error aborts the whole job; we want it as a JS exception instead.
    // Communicators made from the world inherit this handler.
    CheckMpi(env, MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    int* bound;
    int found = 0;
    CheckMpi(env, MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &bound, &found), "MPI_Comm_get_attr");
    if (found) tagUpperBound = *bound;
    StartWatchdog(env);
  }
  return Comm::NewInstance(env, MPI_COMM_WORLD, /*owned=*/false);
}

// finalize(): MPI_Finalize. Does nothing if MPI never started or already finished.
void Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state != State::kRunning) return;
  if (PendingRequests() > 0) {
    ThrowTypeError(env, std::to_string(PendingRequests()) +
                            " non-blocking operation(s) are still pending: wait() for them before finalize()");
  }
  state = State::kFinalized;
  int code;
  {
    // MPI_Finalize waits for the other ranks too.
    Watch watch(Waiting{"finalize", worldMembers, {-1, -1}});
    code = MPI_Finalize();
  }
  CheckMpi(env, code, "MPI_Finalize");
}

// abort(code): MPI_Abort on the world, which ends every rank of the job. It only returns if
// MPI is not running, and then the JS layer exits the process itself.
void Abort(const Napi::CallbackInfo& info) {
  int code = IntArg(info.Env(), info[0], "code");
  if (state == State::kRunning) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace

void RequireRunning(Napi::Env env) {
  if (state == State::kRunning) return;
  ThrowTypeError(env, state == State::kFinalized ? "MPI was finalized" : "MPI is not initialized: call init() first");
}

bool IsRunning() { return state == State::kRunning; }

int TagUpperBound() { return tagUpperBound; }

void InitRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  exports.Set("abort", Napi::Function::New(env, Abort, "abort"));
  exports.Set("setCollectiveTimeout", Napi::Function::New(env, SetTimeout, "setCollectiveTimeout"));
  exports.Set("collectiveTimeout", Napi::Function::New(env, GetTimeout, "collectiveTimeout"));
}

}  // namespace mpinapi
