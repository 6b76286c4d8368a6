// AdamW's per-element update (native/adamw.cc), exported beside the SGEMM.
#pragma once
#include <napi.h>

Napi::Value AdamW(const Napi::CallbackInfo& info);
