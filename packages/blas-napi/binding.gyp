{
  "targets": [
    {
      "target_name": "blas_napi",
      "sources": ["native/addon.cc"],
      # node-addon-api's target that turns C++ exceptions into JS exceptions.
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      # OpenBLAS's own flags, from pkg-config (see scripts/blas-flags.mjs).
      "include_dirs": ["<!@(node scripts/blas-flags.mjs include_dirs)"],
      "libraries": ["<!@(node scripts/blas-flags.mjs libraries)"],
      "ldflags": ["<!@(node scripts/blas-flags.mjs ldflags)"],
      "cflags_cc": ["-O2"]
    }
  ]
}
