// The tokenized dataset, cached on disk: tokenizing is the slow part of start-up, and every rank (and every
// later run) needs the same tokens. The file name is a hash of (dataset, tokenizer, seq_len) and of the dataset
// file's size and modification time, so an edited dataset is tokenized again.
//
// Ranks on one machine do not race: the first to create `<file>.lock` builds the file (written aside, then
// renamed into place); the others wait for it. A lock left by a process that died is taken over.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { userCwd } from "./hub.ts";

export interface TokenCacheRequest {
  /** Relative paths below are resolved against it (default: the user's folder). */
  cwd?: string;
  /** What the tokens depend on. */
  key: Record<string, unknown>;
  /** Paths (relative to cwd) whose size and mtime are part of the key when they are files. */
  sourceFiles: string[];
  /** Tokenizes; reports progress as (done, total). */
  build: (progress: (done: number, total: number) => void) => Promise<Int32Array>;
}

/** The cache folder: PICOTRON_CACHE_DIR, else `.cache/tokenized` under cwd. */
export function cacheDir(cwd: string): string {
  return process.env.PICOTRON_CACHE_DIR
    ? path.resolve(cwd, process.env.PICOTRON_CACHE_DIR)
    : path.join(cwd, ".cache", "tokenized");
}

export function cacheFile(req: Omit<TokenCacheRequest, "build">): string {
  const files = req.sourceFiles.map((f) => {
    const p = path.resolve(req.cwd ?? userCwd(), f);
    const st = fs.existsSync(p) && fs.statSync(p).isFile() ? fs.statSync(p) : null;
    return st ? { path: p, size: st.size, mtime: st.mtimeMs } : null;
  });
  const hash = crypto
    .createHash("sha256")
    .update(JSON.stringify({ key: req.key, files }))
    .digest("hex");
  return path.join(cacheDir(req.cwd ?? userCwd()), `${hash.slice(0, 24)}.tokens`);
}

function readTokens(file: string): Int32Array {
  const buf = fs.readFileSync(file);
  if (buf.byteLength % 4 !== 0) throw new Error(`token cache ${file} is corrupt: delete it to rebuild`);
  const out = new Int32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** True when the lock's owner is a live process on this machine (or on another machine: assume alive). */
function lockIsLive(lock: string): boolean {
  try {
    const { host, pid } = JSON.parse(fs.readFileSync(lock, "utf8")) as { host: string; pid: number };
    if (host !== os.hostname()) return true;
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but is someone else's
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function tryLock(lock: string): boolean {
  try {
    fs.writeFileSync(lock, JSON.stringify({ host: os.hostname(), pid: process.pid }), { flag: "wx" });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    if (!lockIsLive(lock)) fs.rmSync(lock, { force: true }); // its builder died: the next try may take it
    return false;
  }
}

/** The cached tokens, building them first when no rank has yet. */
export async function loadOrBuildTokens(req: TokenCacheRequest): Promise<Int32Array> {
  const file = cacheFile(req);
  const lock = `${file}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (;;) {
    if (fs.existsSync(file)) return readTokens(file);
    if (tryLock(lock)) {
      try {
        if (fs.existsSync(file)) return readTokens(file); // built while we took the lock
        const bar = new ProgressBar("tokenizing");
        const tokens = await req.build((done, total) => bar.update(done, total));
        bar.finish(`${tokens.length} tokens`);
        const tmp = `${file}.tmp-${process.pid}`;
        fs.writeFileSync(tmp, new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
        fs.renameSync(tmp, file);
        return tokens;
      } finally {
        fs.rmSync(lock, { force: true });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A one-line progress bar on stderr: redrawn every 100 ms on a terminal, a line every 2 s in a log. */
class ProgressBar {
  private last = 0;
  private readonly start = performance.now();
  private readonly interval = process.stderr.isTTY ? 100 : 2000;
  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    const now = performance.now();
    if (now - this.last < this.interval && done < total) return;
    this.last = now;
    const width = 30;
    const filled = Math.round((done / Math.max(total, 1)) * width);
    const line = `${this.label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} documents`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
  }

  finish(summary: string): void {
    const seconds = ((performance.now() - this.start) / 1e3).toFixed(1);
    process.stderr.write(`${process.stderr.isTTY ? "\n" : ""}${this.label}: ${summary} in ${seconds}s\n`);
  }
}
