// Elementwise addition (native/add.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value Add(const Napi::CallbackInfo& info);
