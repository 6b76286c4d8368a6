{
  "targets": [
    {
      "target_name": "mpi_napi",
      "sources": [
        "native/addon.cc",
        "native/buffer.cc",
        "native/comm.cc",
        "native/errors.cc",
        "native/request.cc",
        "native/runtime.cc",
        "native/watchdog.cc"
      ],
      # node-addon-api's target that turns C++ exceptions into JS exceptions.
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      # MPI's own flags, read from `mpicc --showme` (see scripts/mpi-flags.mjs).
      "include_dirs": ["<!@(node scripts/mpi-flags.mjs include_dirs)"],
      # mpi.h would also pull in MPI's long-deprecated C++ bindings, which we don't use.
      "defines": ["OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
      "cflags": ["<!@(node scripts/mpi-flags.mjs cflags)"],
      "libraries": ["<!@(node scripts/mpi-flags.mjs libraries)"],
      "ldflags": ["<!@(node scripts/mpi-flags.mjs ldflags)"]
    }
  ]
}
