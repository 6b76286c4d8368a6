// Cross-entropy's forward with its gradient (native/cross_entropy.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value CrossEntropy(const Napi::CallbackInfo& info);
