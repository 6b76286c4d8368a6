// Causal self-attention's forward and backward (native/attention.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value AttentionForward(const Napi::CallbackInfo& info);
Napi::Value AttentionBackward(const Napi::CallbackInfo& info);
