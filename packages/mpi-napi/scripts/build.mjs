// Builds the native addon (build/Release/mpi_napi.node) with node-gyp; `pnpm install` runs it.
//
// Two things can make a fresh machine's build fail in confusing ways, so we settle them first:
// - no MPI: say once which packages to install instead of printing a compiler error;
// - node-gyp downloading Node's headers (there may be no network): when the headers that
//   ship with this Node exist (Debian's nodejs puts them in /usr/include/node), point
//   node-gyp at them with --nodedir.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mpiFlags } from "./mpi-flags.mjs";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));

function fail(message) {
  console.error(`\n@picotron/mpi-napi: ${message}\n`);
  process.exit(1);
}

let flags;
try {
  flags = mpiFlags();
} catch {
  flags = null;
}
if (!flags || !flags.include_dirs.some((dir) => existsSync(join(dir, "mpi.h")))) {
  fail(
    "OpenMPI was not found (`mpicc --showme` must work and point at mpi.h).\n" +
      "Install it, then run `pnpm install` again:  apt-get install openmpi-bin libopenmpi-dev",
  );
}

// configure + build (not rebuild): make only recompiles what changed, so a later
// `pnpm install` is quick and never deletes a working addon while another process loads it.
const args = ["configure", "build"];
// Node lives in <prefix>/bin/node and its headers in <prefix>/include/node.
const nodeDir = dirname(dirname(process.execPath));
if (existsSync(join(nodeDir, "include", "node", "common.gypi"))) args.push(`--nodedir=${nodeDir}`);

const nodeGyp = createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
try {
  execFileSync(process.execPath, [nodeGyp, ...args], { cwd: packageDir, stdio: "inherit" });
} catch {
  fail("node-gyp could not build the addon (its output is above).");
}
