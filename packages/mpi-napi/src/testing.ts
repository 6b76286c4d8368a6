// For tests that start an MPI program (a step's train.ts, a worker) as a user would from a shell.
//
// vitest may itself run inside an MPI job (mpirun vitest) or inherit one's variables; a child that saw OMPI_* or
// PMIX_* would believe it is already a rank of that job instead of starting its own mpirun (see env.ts).

/** This process's environment without any sign of an MPI job (as if started from a shell). */
export function plainEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("OMPI_") && !name.startsWith("PMIX_")),
  );
}
