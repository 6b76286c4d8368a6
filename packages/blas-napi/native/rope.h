// RoPE's rotation (native/rope.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value Rope(const Napi::CallbackInfo& info);
