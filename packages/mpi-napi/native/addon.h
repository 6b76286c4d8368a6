// What the addon keeps per JS environment: the constructors of its two classes, so that C++
// code can create Comm and Request objects.
#pragma once

#include <napi.h>

namespace mpinapi {

struct AddonData {
  Napi::FunctionReference commClass;
  Napi::FunctionReference requestClass;
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace mpinapi
