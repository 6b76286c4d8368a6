{
  "targets": [
    {
      "target_name": "blas_napi",
      "sources": ["native/addon.cc", "native/adamw.cc", "native/rmsnorm.cc", "native/rope.cc",
                  "native/cross_entropy.cc", "native/attention.cc",
                  "native/swiglu.cc", "native/add.cc"],
      # node-addon-api's target that turns C++ exceptions into JS exceptions.
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      # OpenBLAS's own flags, from pkg-config (see scripts/blas-flags.mjs).
      "include_dirs": ["<!@(node scripts/blas-flags.mjs include_dirs)"],
      "libraries": ["<!@(node scripts/blas-flags.mjs libraries)"],
      "ldflags": ["<!@(node scripts/blas-flags.mjs ldflags)"],
      # AdamW, RMSNorm and RoPE: the same floating-point operations as the loops they stand in for (no FMA
      # contraction), vectorized; cross-entropy, attention and SwiGLU: the same bits on
      # every CPU.
      "cflags_cc": ["-O3", "-ffp-contract=off", "-fno-math-errno", "-Wno-psabi"]
    }
  ]
}
