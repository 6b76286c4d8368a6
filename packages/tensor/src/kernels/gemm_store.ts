// Which GEMM backend runs each signature on this host, measured once and stored in a small JSON file (a
// per-user cache directory), so reruns and every rank on the host make the same choice: the results of a
// run depend on that choice (MLAS and OpenBLAS round differently), so it must not be re-measured.
//   { "<host key>": { "<signature>": { "backend": "blas", "ort_gflops": 121.3, "blas_gflops": 170.2 } } }
// Ranks starting together take a lock (an exclusive mkdir) to measure, so only one of them measures and
// the others read its answer.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export type GemmBackend = "ort" | "blas";

export interface GemmChoice {
  backend: GemmBackend;
  ort_gflops: number;
  blas_gflops: number;
}

type Store = Record<string, Record<string, GemmChoice>>;

/** $PICOTRON_CACHE_DIR, else $XDG_CACHE_HOME/picotron-ts, else ~/.cache/picotron-ts. */
export function cacheDir(): string {
  if (process.env.PICOTRON_CACHE_DIR) return process.env.PICOTRON_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "picotron-ts");
}

export function storePath(): string {
  return path.join(cacheDir(), "gemm-choices.json");
}

function readStore(file: string): Store {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Store;
  } catch {
    return {}; // missing, or cut short by a crash: measure again
  }
}

/** Choices stored for `host` (a copy). */
export function storedChoices(host: string): Record<string, GemmChoice> {
  return { ...readStore(storePath())[host] };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const STALE_LOCK_MS = 120_000;

/** Runs fn holding the store's lock (waits for another process that holds it). */
function withLock<T>(file: string, fn: () => T): T {
  const lock = `${file}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      // a process that died while measuring leaves its lock behind
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) fs.rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(sleeper, 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * The stored choice for (host, signature), or the one `measure` makes, stored before it is returned.
 * Only one process measures a given signature; the others wait for it and read its answer.
 */
export function storedOrMeasured(host: string, signature: string, measure: () => GemmChoice): GemmChoice {
  const file = storePath();
  const known = readStore(file)[host]?.[signature];
  if (known) return known;
  return withLock(file, () => {
    const again = readStore(file)[host]?.[signature];
    if (again) return again;
    const choice = measure();
    const store = readStore(file);
    store[host] = { ...store[host], [signature]: choice };
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(store, null, 1));
    fs.renameSync(tmp, file); // readers never see a half-written file
    return choice;
  });
}

/** Forgets the stored choices of `host` (the next product of each shape measures again). */
export function forgetChoices(host: string): void {
  const file = storePath();
  withLock(file, () => {
    const store = readStore(file);
    if (!(host in store)) return;
    delete store[host];
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(store, null, 1));
    fs.renameSync(tmp, file);
  });
}
