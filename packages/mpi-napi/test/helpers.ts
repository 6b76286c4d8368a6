// Running MPI jobs from the tests.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { plainEnv } from "../src/testing.ts";

export const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** Fails with a clear message when OpenMPI is missing (CI must install it). */
export function requireMpirun(): void {
  const probe = spawnSync("mpirun", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "mpirun is not available: these tests need OpenMPI (apt-get install openmpi-bin libopenmpi-dev)",
    );
  }
}

export { plainEnv };

export interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to its end (killed after 60 s, so a hang fails the test instead of stalling it). */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv = plainEnv()): Outcome {
  const start = performance.now();
  const result = spawnSync(command, args, { cwd: packageDir, env, encoding: "utf8", timeout: 60_000 });
  if (result.error && !("code" in result.error && result.error.code === "ETIMEDOUT")) throw result.error;
  return {
    code: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    seconds: (performance.now() - start) / 1000,
  };
}

/** `mpirun -n ranks node --import tsx test/workers/<worker> ...args`, as root if need be. */
export function runWorkers(
  ranks: number,
  worker: string,
  args: string[],
  nodeFlags: string[] = [],
  extraEnv: NodeJS.ProcessEnv = {},
): Outcome {
  const env = {
    ...plainEnv(),
    OMPI_ALLOW_RUN_AS_ROOT: "1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
    ...extraEnv,
  };
  const mpirunFlags = ["-n", String(ranks), "--oversubscribe", "--bind-to", "none"];
  const program = [process.execPath, ...nodeFlags, "--import", "tsx", join("test", "workers", worker)];
  return run("mpirun", [...mpirunFlags, ...program, ...args], env);
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "mpi-napi-test-"));
}

/** Reads what rank `rank` of a worker wrote to `dir`. */
export function readResults<T>(dir: string, rank: number): T {
  return JSON.parse(readFileSync(join(dir, `rank${rank}.json`), "utf8")) as T;
}

/** A failed job's own report, for the assertion message. */
export function report(outcome: Outcome): string {
  return `exit ${outcome.code} after ${outcome.seconds.toFixed(1)} s\n${outcome.stdout}\n${outcome.stderr}`;
}
