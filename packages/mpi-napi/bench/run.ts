// `pnpm --filter @picotron/mpi-napi bench`: times each case of cases.json with mpi.bench.ts
// and, when Debian's python3-mpi4py is there, with mpi4py_bench.py, each under mpirun -n 2,
// and prints a table.
//
// `pnpm --filter @picotron/mpi-napi bench -- --hosts` (root): the same with the two ranks on two
// test hosts (network namespaces, scripts/hosts.sh, made for the run and removed after), so
// every byte goes over TCP through their bridge, as between two machines.
//
// Both use the same mpirun settings, one rank per core (the machine has 2), so the ratio
// compares the bindings, not the placement. A small shared machine is noisy: what else runs
// on it can slow the large cases threefold for several seconds at a time, both bindings
// alike. So the two take turns case by case, a few seconds apart, for several rounds. Each
// time is the median of its rounds, and the ratio the median of the rounds' own ratios
// (mpi-napi's time over mpi4py's a few seconds later), which a slow spell hitting one of the
// two moves least.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { networkArgs } from "../src/hosts.ts";

interface Case {
  op: string;
  bytes: number;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const PYTHON = "/usr/bin/python3"; // Debian's, where python3-mpi4py installs
const file = JSON.parse(readFileSync(new URL("cases.json", import.meta.url), "utf8")) as {
  cases: Case[];
  hostsCases: Case[];
};
const flags = process.argv.slice(2).filter((arg) => arg !== "--");
if (flags.some((flag) => flag !== "--hosts"))
  throw new Error(`usage: bench [-- --hosts], got ${flags.join(" ")}`);
const acrossHosts = flags.includes("--hosts");
const cases = acrossHosts ? file.hostsCases : file.cases;
// TCP between the hosts varies less than shared memory, and its cases take longer.
const ROUNDS = acrossHosts ? 3 : 7;
const HOSTS = resolve(benchDir, "..", "..", "..", "scripts", "hosts.sh");

/** Runs one case of a benchmark program on 2 ranks; returns its seconds per operation. */
function mpirun(program: string[], caseIndex: number): number {
  const env = { ...process.env };
  if (process.getuid?.() === 0) {
    env.OMPI_ALLOW_RUN_AS_ROOT = "1";
    env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1";
  }
  let command = ["mpirun", "-n", "2", "--bind-to", "core", ...program, String(caseIndex)];
  if (hostfile !== null) command.push("hosts");
  if (hostfile !== null) {
    // From picohost1, one rank on each host, TCP on their network, started through the agent.
    const network = networkArgs({ PICOTRON_MPI_TCP: "eth0", PICOTRON_MPI_AGENT: `${HOSTS} agent` });
    command = [HOSTS, "run", "picohost1", "mpirun", "--hostfile", hostfile, ...network, ...command.slice(1)];
  }
  const [file, ...args] = command as [string, ...string[]];
  const result = spawnSync(file, args, { cwd: benchDir, env, encoding: "utf8" });
  const seconds = Number(result.stdout?.trim().split("\n").pop());
  if (result.error || result.status !== 0 || !(seconds > 0)) {
    throw new Error(
      `mpirun ${args.join(" ")} failed:\n${result.error ?? ""}${result.stdout}${result.stderr}`,
    );
  }
  return seconds;
}

function hasMpi4py(): boolean {
  return spawnSync(PYTHON, ["-c", "import mpi4py, numpy"]).status === 0;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** With --hosts: brings up two test hosts and returns a hostfile of them (null otherwise). */
function setUpHosts(): string | null {
  if (!acrossHosts) return null;
  const up = spawnSync(HOSTS, ["up", "2"], { encoding: "utf8" });
  if (up.status !== 0) throw new Error(`--hosts needs the test hosts (root): ${up.stderr.trim()}`);
  const file = join(mkdtempSync(join(tmpdir(), "mpi-bench-")), "hosts");
  writeFileSync(file, "picohost1 slots=1\npicohost2 slots=1\n");
  process.on("exit", () => {
    spawnSync(HOSTS, ["down"]);
    rmSync(dirname(file), { recursive: true, force: true });
  });
  return file;
}

const hostfile = setUpHosts();
const withMpi4py = hasMpi4py();
if (!withMpi4py) console.log(`(${PYTHON} with mpi4py and numpy not found: apt-get install python3-mpi4py)\n`);
const ours: number[][] = cases.map(() => []);
const theirs: number[][] = cases.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  process.stderr.write(`round ${round + 1} of ${ROUNDS}\n`);
  cases.forEach((_, i) => {
    ours[i]!.push(mpirun([process.execPath, "--import", "tsx", "mpi.bench.ts"], i));
    if (withMpi4py) theirs[i]!.push(mpirun([PYTHON, "mpi4py_bench.py"], i));
  });
}

const size = (bytes: number) => (bytes >= 1 << 20 ? `${bytes / (1 << 20)} MB` : `${bytes} B`);
const micros = (seconds: number) => (seconds * 1e6).toFixed(seconds < 1e-4 ? 2 : 0);
const gbPerSecond = (bytes: number, seconds: number) =>
  bytes < 1 << 20 ? "" : (bytes / seconds / 1e9).toFixed(2);

const header = [acrossHosts ? "op (2 hosts, TCP)" : "op (2 ranks)", "size", "mpi-napi µs", "GB/s"];
if (withMpi4py) header.push("mpi4py µs", "GB/s", "ratio");
const rows = cases.map(({ op, bytes }, i) => {
  const mine = median(ours[i]!);
  const row = [op, size(bytes), micros(mine), gbPerSecond(bytes, mine)];
  if (withMpi4py) {
    const other = median(theirs[i]!);
    const ratio = median(ours[i]!.map((seconds, round) => seconds / theirs[i]![round]!));
    row.push(micros(other), gbPerSecond(bytes, other), ratio.toFixed(2));
  }
  return row;
});
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
const line = (cells: string[]) => `| ${cells.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ")} |`;
console.log([line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n"));
console.log(`\nmedian of ${ROUNDS} rounds; sendrecv is a ping-pong, its time one message's way`);
if (withMpi4py) {
  console.log("ratio = median over the rounds of mpi-napi time / mpi4py time (below 1: mpi-napi is faster)");
}
