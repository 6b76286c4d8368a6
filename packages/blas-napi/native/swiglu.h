// The SwiGLU gate of the Llama MLP and its backward (native/swiglu.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value Swiglu(const Napi::CallbackInfo& info);
Napi::Value SwigluBackward(const Napi::CallbackInfo& info);
