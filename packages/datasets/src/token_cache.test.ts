import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cacheDir, cacheFile, loadOrBuildTokens, type TokenCacheRequest } from "./token_cache.ts";

let dir: string;
const saved = process.env.PICOTRON_CACHE_DIR;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "picotron-token-cache-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  if (saved === undefined) delete process.env.PICOTRON_CACHE_DIR;
  else process.env.PICOTRON_CACHE_DIR = saved;
});

/** A request whose build counts its calls. */
function request(key: Record<string, unknown>, sourceFiles: string[] = []) {
  const calls = { n: 0 };
  const req: TokenCacheRequest = {
    cwd: dir,
    key,
    sourceFiles,
    build: async (progress) => {
      calls.n++;
      progress(1, 1);
      return Int32Array.from([1, 2, 3, -4, 2 ** 31 - 1]);
    },
  };
  return { req, calls };
}

describe("token cache", () => {
  it("lives in .cache/tokenized under cwd, or in PICOTRON_CACHE_DIR", () => {
    delete process.env.PICOTRON_CACHE_DIR;
    expect(cacheDir(dir)).toBe(path.join(dir, ".cache", "tokenized"));
    process.env.PICOTRON_CACHE_DIR = "elsewhere";
    expect(cacheDir(dir)).toBe(path.join(dir, "elsewhere"));
  });

  it("builds once, then reads the same tokens back", async () => {
    const { req, calls } = request({ dataset: "a", seq_len: 8 });
    const first = await loadOrBuildTokens(req);
    expect(Array.from(await loadOrBuildTokens(req))).toEqual(Array.from(first));
    expect(Array.from(first)).toEqual([1, 2, 3, -4, 2 ** 31 - 1]);
    expect(calls.n).toBe(1);
    expect(fs.existsSync(`${cacheFile(req)}.lock`)).toBe(false);
  });

  it("a different key, or an edited source file, is another cache file", () => {
    const src = path.join(dir, "data.txt");
    fs.writeFileSync(src, "hello");
    const a = cacheFile(request({ dataset: "data.txt" }, ["data.txt"]).req);
    expect(cacheFile(request({ dataset: "data.txt", seq_len: 9 }, ["data.txt"]).req)).not.toBe(a);
    fs.writeFileSync(src, "hello, world");
    expect(cacheFile(request({ dataset: "data.txt" }, ["data.txt"]).req)).not.toBe(a);
  });

  it("takes over the lock of a builder that died", async () => {
    const { req, calls } = request({ dataset: "dead-builder" });
    const file = cacheFile(req);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // a pid that cannot be alive: above the kernel's pid_max
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ host: os.hostname(), pid: 2 ** 30 }));
    expect(await loadOrBuildTokens(req)).toHaveLength(5);
    expect(calls.n).toBe(1);
  });
});
