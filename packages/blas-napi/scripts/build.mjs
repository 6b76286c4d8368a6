// Builds the native addon (build/Release/blas_napi.node) with node-gyp; `pnpm install` runs it.
//
// The addon is optional: without OpenBLAS the tensor library runs every GEMM on onnxruntime's MLAS. So a
// machine without it gets one line saying how to add it, and the install goes on (exit code 0).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { blasFlags } from "./blas-flags.mjs";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));

function skip(message) {
  console.warn(`@picotron/blas-napi: ${message}; GEMMs will run on onnxruntime's MLAS only.`);
  process.exit(0);
}

let flags;
try {
  flags = blasFlags();
} catch {
  flags = null;
}
if (!flags || !flags.include_dirs.some((dir) => existsSync(join(dir, "cblas.h")))) {
  skip("OpenBLAS was not found (apt-get install libopenblas-dev pkg-config, then pnpm install)");
}

// configure + build (not rebuild): make only recompiles what changed (see mpi-napi's build script).
const args = ["configure", "build"];
const nodeDir = dirname(dirname(process.execPath));
if (existsSync(join(nodeDir, "include", "node", "common.gypi"))) args.push(`--nodedir=${nodeDir}`);

const nodeGyp = createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
try {
  execFileSync(process.execPath, [nodeGyp, ...args], { cwd: packageDir, stdio: "inherit" });
} catch {
  skip("node-gyp could not build the addon (its output is above)");
}
