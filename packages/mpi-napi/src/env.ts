// What the environment says about the MPI job this process belongs to. mpirun sets these
// variables before the process starts, so they can be read without loading MPI (the
// launcher reads them before deciding whether to start mpirun at all).
import { availableParallelism } from "node:os";

function intFromEnv(name: string): number | undefined {
  const value = process.env[name];
  return value === undefined ? undefined : Number.parseInt(value, 10);
}

/** True when this process was started by mpirun (OpenMPI) or another PMIx launcher. */
export function isUnderMpi(): boolean {
  return process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMIX_RANK !== undefined;
}

/** This process's rank in the whole job (0 when not under MPI), known before init(). */
export function worldRank(): number {
  return intFromEnv("OMPI_COMM_WORLD_RANK") ?? intFromEnv("PMIX_RANK") ?? 0;
}

/** The number of ranks in the whole job as mpirun announced it (undefined if it did not). */
export function jobSize(): number | undefined {
  return intFromEnv("OMPI_COMM_WORLD_SIZE");
}

/**
 * How many ranks of the job run on this machine (torchrun's LOCAL_WORLD_SIZE). They share
 * its cores, so each should use about cores / localWorldSize() threads for its math.
 */
export function localWorldSize(): number {
  return intFromEnv("OMPI_COMM_WORLD_LOCAL_SIZE") ?? 1;
}

/** This process's index among the ranks on this machine (torchrun's LOCAL_RANK). */
export function localRank(): number {
  return intFromEnv("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0;
}

/** A thread count for one rank's math: this machine's cores shared among its ranks. */
export function threadsPerRank(): number {
  return Math.max(1, Math.floor(availableParallelism() / localWorldSize()));
}
