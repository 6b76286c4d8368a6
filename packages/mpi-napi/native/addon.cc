// The addon's entry point: picotron-ts's torch.distributed, over the system's MPI.
// src/binding.ts describes what this module exports; src/index.ts is the public API.
#include <napi.h>

#include "addon.h"
#include "comm.h"
#include "request.h"
#include "runtime.h"

namespace mpinapi {

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData();  // node deletes it when the environment goes away
  data->commClass = Napi::Persistent(Comm::DefineClass(env));
  data->requestClass = Napi::Persistent(Request::DefineClass(env));
  env.SetInstanceData<AddonData>(data);

  InitRuntime(env, exports);
  exports.Set("waitAll", Napi::Function::New(env, WaitAll, "waitAll"));
  return exports;
}

}  // namespace mpinapi

// The macro pastes the name into new identifiers, so it takes an unqualified one.
using mpinapi::InitModule;
NODE_API_MODULE(mpi_napi, InitModule)
