// MPI's life cycle: MPI_Init once, MPI_Finalize once, and nothing may touch MPI after that.
#pragma once

#include <napi.h>

namespace mpinapi {

// Throws a TypeError unless MPI is initialized and not yet finalized. Every operation
// starts with this: calling MPI after MPI_Finalize is undefined behaviour (often a crash).
void RequireRunning(Napi::Env env);

// Whether MPI may be called: initialized and not yet finalized.
bool IsRunning();

// The largest tag MPI accepts (MPI_TAG_UB, read at init).
int TagUpperBound();

// Adds init, finalize and abort to the module's exports.
void InitRuntime(Napi::Env env, Napi::Object exports);

}  // namespace mpinapi
