// `pnpm --filter @picotron/mpi-napi bench`: runs mpi.bench.ts and, when Debian's
// python3-mpi4py is there, mpi4py_bench.py, each under mpirun -n 2, and prints a table.
//
// Both runs use the same mpirun settings, one rank per core (the machine has 2), so the
// ratio compares the bindings, not the placement. A small shared machine is noisy, so the
// two take turns for a few rounds and each case keeps its best round.
import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

interface Result {
  op: string;
  bytes: number;
  seconds: number;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const PYTHON = "/usr/bin/python3"; // Debian's, where python3-mpi4py installs

function mpirun(program: string[]): Result[] {
  const env = { ...process.env };
  if (process.getuid?.() === 0) {
    env.OMPI_ALLOW_RUN_AS_ROOT = "1";
    env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1";
  }
  const args = ["-n", "2", "--bind-to", "core", ...program];
  const result = spawnSync("mpirun", args, { cwd: benchDir, env, encoding: "utf8" });
  if (result.error || result.status !== 0) {
    throw new Error(
      `mpirun ${args.join(" ")} failed:\n${result.error ?? ""}${result.stdout}${result.stderr}`,
    );
  }
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as Result[];
}

function hasMpi4py(): boolean {
  return spawnSync(PYTHON, ["-c", "import mpi4py, numpy"]).status === 0;
}

const size = (bytes: number) => (bytes >= 1 << 20 ? `${bytes / (1 << 20)} MB` : `${bytes} B`);
const micros = (seconds: number) => (seconds * 1e6).toFixed(seconds < 1e-4 ? 2 : 0);
const gbPerSecond = (r: Result) => (r.bytes < 1 << 20 ? "" : (r.bytes / r.seconds / 1e9).toFixed(2));

const ROUNDS = 3;

/** Per case, the fastest of the rounds. */
function best(rounds: Result[][]): Result[] {
  return rounds[0]!.map((r, i) => ({ ...r, seconds: Math.min(...rounds.map((round) => round[i]!.seconds)) }));
}

const withMpi4py = hasMpi4py();
const oursRounds: Result[][] = [];
const theirsRounds: Result[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  oursRounds.push(mpirun([process.execPath, "--import", "tsx", "mpi.bench.ts"]));
  if (withMpi4py) theirsRounds.push(mpirun([PYTHON, "mpi4py_bench.py"]));
}
const ours = best(oursRounds);
const theirs = withMpi4py ? best(theirsRounds) : null;
if (theirs === null)
  console.log(`(${PYTHON} with mpi4py and numpy not found: apt-get install python3-mpi4py)\n`);

const header = ["op (2 ranks)", "size", "mpi-napi µs", "GB/s"];
if (theirs) header.push("mpi4py µs", "GB/s", "ratio");
const rows = ours.map((r, i) => {
  const row = [r.op, size(r.bytes), micros(r.seconds), gbPerSecond(r)];
  const other = theirs?.[i];
  if (other) row.push(micros(other.seconds), gbPerSecond(other), (r.seconds / other.seconds).toFixed(2));
  return row;
});
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
const line = (cells: string[]) => `| ${cells.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ")} |`;
console.log([line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n"));
if (theirs) console.log("\nratio = mpi-napi time / mpi4py time (below 1: mpi-napi is faster)");
