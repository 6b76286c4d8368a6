// RMSNorm's forward and backward (native/rmsnorm.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value RmsNormForward(const Napi::CallbackInfo& info);
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info);
