import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BUILTIN_CORPUS_SOURCE, builtinStories } from "./builtin_corpus.ts";
import { DatasetError, loadDocuments } from "./datasets.ts";

// Parquet fixtures are written with hyparquet-writer, a devDependency of this package; the tests that need one are
// skipped (and say so) where it is not installed. The name is a variable so that type-checking does not need it.
interface ParquetWriter {
  parquetWriteBuffer(opts: { columnData: { name: string; data: unknown[]; type?: string }[] }): ArrayBuffer;
}
const writerPackage = "hyparquet-writer";
const writer = (await import(writerPackage).catch(() => null)) as ParquetWriter | null;
const NEEDS_WRITER = writer ? "" : " [skipped: needs the hyparquet-writer devDependency]";
const parquet = (columns: Record<string, unknown[]>) =>
  Buffer.from(
    writer!.parquetWriteBuffer({
      columnData: Object.entries(columns).map(([name, data]) => ({ name, data })),
    }),
  );

let dir: string;
const write = (name: string, content: string | Buffer) => {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
};
const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.fail("expected a DatasetError"),
    (err: unknown) => {
      expect(err).toBeInstanceOf(DatasetError);
      return (err as Error).message;
    },
  );

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "picotron-datasets-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Byte entropies in bits: of one byte (unigram), and of a byte given the one before it (bigram). */
function byteEntropies(bytes: Uint8Array): { unigram: number; bigram: number } {
  const uni = new Float64Array(256);
  const bi = new Float64Array(256 * 256);
  for (let i = 0; i < bytes.length; i++) {
    uni[bytes[i]!]!++;
    if (i > 0) bi[bytes[i - 1]! * 256 + bytes[i]!]!++;
  }
  let unigram = 0;
  for (const c of uni) if (c > 0) unigram -= (c / bytes.length) * Math.log2(c / bytes.length);
  // H(next | previous) = -sum p(prev, next) log p(next | prev), with p(next | prev) = count(prev, next) / count(prev)
  const pairs = bytes.length - 1;
  const prevCount = new Float64Array(256);
  for (let j = 0; j < bi.length; j++) prevCount[j >> 8]! += bi[j]!;
  let bigram = 0;
  for (let j = 0; j < bi.length; j++) {
    if (bi[j]! > 0) bigram -= (bi[j]! / pairs) * Math.log2(bi[j]! / prevCount[j >> 8]!);
  }
  return { unigram, bigram };
}

describe("builtinStories", () => {
  const stories = builtinStories();

  // how quick it is to make: pnpm --filter @picotron/datasets bench
  it("is deterministic", () => {
    expect(builtinStories()).toEqual(stories);
    expect(builtinStories(10)).toEqual(stories.slice(0, 10));
  });

  it("holds 2-3 MB of distinct stories: a default run's 262,144 tokens many times over", () => {
    const bytes = stories.reduce((n, s) => n + Buffer.byteLength(s), 0);
    expect(bytes).toBeGreaterThan(2e6);
    expect(bytes).toBeLessThan(3e6);
    expect(new Set(stories).size).toBe(stories.length);
    expect(new Set(stories.join(" ").match(/[A-Za-z']+/g)).size).toBeGreaterThan(200); // a real vocabulary
  });

  it("has structure to learn: a byte's entropy given the previous byte is well below its own", () => {
    const { unigram, bigram } = byteEntropies(Buffer.from(stories.join("\n")));
    expect(unigram).toBeGreaterThan(4); // English-like spread of letters, not a few repeated bytes
    expect(bigram).toBeLessThan(0.8 * unigram);
    expect(bigram).toBeGreaterThan(2); // ... yet far from predictable
  });

  it("names its generator's source file, which stands for it in a token cache key", () => {
    expect(fs.statSync(BUILTIN_CORPUS_SOURCE).isFile()).toBe(true);
    expect(fs.readFileSync(BUILTIN_CORPUS_SOURCE, "utf8")).toContain("export function builtinStories(");
  });

  it("rejects a non-positive story count", () => {
    expect(() => builtinStories(0)).toThrow(RangeError);
    expect(() => builtinStories(2.5)).toThrow(/positive integer/);
  });
});

describe("builtin and local files", () => {
  it("builtin:stories is the built-in corpus", async () => {
    expect(await loadDocuments("builtin:stories", dir)).toEqual(builtinStories());
    expect(await failure(loadDocuments("builtin:poems", dir))).toMatch(
      /unknown built-in dataset.*builtin:stories/,
    );
  });

  it(".txt: the whole file is one document, relative to cwd or absolute", async () => {
    const file = write("texts/a.txt", "\ufeffFirst line.\nSecond line, é ✓.\n");
    expect(await loadDocuments("texts/a.txt", dir)).toEqual(["First line.\nSecond line, é ✓.\n"]);
    expect(await loadDocuments(file, "/")).toEqual(["First line.\nSecond line, é ✓.\n"]);
  });

  it(".jsonl: one document per line from its text field, blank lines skipped", async () => {
    write(
      "d.jsonl",
      '{"text": "one"}\r\n\n  \n{"id": 2, "text": "two\\nlines"}\n{"text": ""}\n{"text": "é ✓"}',
    );
    expect(await loadDocuments("d.jsonl", dir)).toEqual(["one", "two\nlines", "", "é ✓"]);
  });

  it(".jsonl: a malformed line or one without a string text field names the file and line", async () => {
    const bad = write("bad.jsonl", '{"text": "ok"}\n\n{"text": "unterminated}\n');
    expect(await failure(loadDocuments("bad.jsonl", dir))).toMatch(`${bad}:3: not valid JSON`);
    const noText = write("notext.jsonl", '{"text": "ok"}\n{"content": "no"}\n');
    expect(await failure(loadDocuments("notext.jsonl", dir))).toMatch(
      `${noText}:2: expected an object with a string`,
    );
    write("number.jsonl", '{"text": 5}\n');
    expect(await failure(loadDocuments("number.jsonl", dir))).toMatch(":1: expected an object");
    write("array.jsonl", '["text"]\n');
    expect(await failure(loadDocuments("array.jsonl", dir))).toMatch(":1: expected an object");
  });

  it("a missing file: the error names the resolved path", async () => {
    for (const name of ["missing.txt", "sub/missing.jsonl", "./missing", "missing.parquet"]) {
      expect(await failure(loadDocuments(name, dir))).toContain(`not found: ${path.resolve(dir, name)}`);
    }
  });

  it("an empty corpus, an unsupported file, or a name that is neither file nor hub id: clear errors", async () => {
    write("empty.txt", "");
    expect(await failure(loadDocuments("empty.txt", dir))).toMatch(/empty.txt: no text in it/);
    write("blank.jsonl", '\n{"text": ""}\n\n');
    expect(await failure(loadDocuments("blank.jsonl", dir))).toMatch(/1 documents, all empty/);
    write("data.csv", "text\nhello\n");
    expect(await failure(loadDocuments("data.csv", dir))).toMatch(/data.csv: unsupported file type/);
    expect(await failure(loadDocuments("texts", dir))).toMatch(/texts is not a file/);
    expect(await failure(loadDocuments("not a dataset!", dir))).toMatch(
      /neither a file .* nor a hub dataset id/,
    );
  });

  it("a .parquet file that is not parquet: a clear error", async () => {
    write("fake.parquet", "text\nhello\n");
    expect(await failure(loadDocuments("fake.parquet", dir))).toMatch(
      /fake.parquet: not a readable parquet file/,
    );
  });

  it.skipIf(!writer)(
    `.parquet: the text column, in order, missing values skipped${NEEDS_WRITER}`,
    async () => {
      write("d.parquet", parquet({ id: [1, 2, 3, 4], text: ["first", null, "third é", "fourth"] }));
      expect(await loadDocuments("d.parquet", dir)).toEqual(["first", "third é", "fourth"]);
      write("cols.parquet", parquet({ id: [1], content: ["x"] }));
      expect(await failure(loadDocuments("cols.parquet", dir))).toMatch(
        /no "text" column; its columns are: id, content/,
      );
      write("ints.parquet", parquet({ text: [1, 2] }));
      expect(await failure(loadDocuments("ints.parquet", dir))).toMatch(
        /row 1: the "text" column holds number/,
      );
    },
  );
});

describe("hub datasets", () => {
  // A stand-in for the hub on 127.0.0.1: `routes` maps a path to JSON, a file's bytes, a status or a redirect.
  type Route = object | Buffer | number | { redirect: string };
  let routes: Record<string, Route> = {};
  let requests: { path: string; auth?: string }[] = [];
  let server: http.Server;
  let base: string;
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN };
  const shard = (n: number) => `${base}/api/datasets/org/stories/parquet/default/train/${n}.parquet`;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const url = (req.url ?? "").split("?")[0]!;
      requests.push({ path: url, auth: req.headers.authorization });
      const route = routes[url];
      if (route === undefined || typeof route === "number") {
        res.writeHead(route ?? 404).end("{}");
      } else if (Buffer.isBuffer(route)) {
        res.writeHead(200, { "content-type": "application/octet-stream" }).end(route);
      } else if ("redirect" in route) {
        res.writeHead(302, { location: route.redirect }).end();
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(route));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const useHub = (r: Record<string, Route>) => {
    routes = r;
    requests = [];
    process.env.HF_ENDPOINT = base;
  };

  it.skipIf(!writer)(
    `downloads the first train shard once, then reads it from the cache${NEEDS_WRITER}`,
    async () => {
      useHub({
        "/api/datasets/org/stories/parquet": { default: { train: [shard(0), shard(1)], test: [] } },
        "/api/datasets/org/stories/parquet/default/train/0.parquet": { redirect: `${base}/files/0.parquet` },
        "/files/0.parquet": parquet({ text: ["a story", "another story"] }),
        "/api/datasets/org/stories/parquet/default/train/1.parquet": parquet({ text: ["not this shard"] }),
      });
      process.env.HF_TOKEN = "hf_test";
      expect(await loadDocuments("org/stories", dir)).toEqual(["a story", "another story"]);
      expect(requests.map((r) => r.path)).toEqual([
        "/api/datasets/org/stories/parquet",
        "/api/datasets/org/stories/parquet/default/train/0.parquet",
        "/files/0.parquet",
      ]);
      expect(requests.every((r) => r.auth === "Bearer hf_test")).toBe(true);
      expect(fs.readdirSync(path.join(dir, ".cache", "datasets", "org--stories"))).toEqual([
        "auto-train-shard0.parquet",
      ]);
      // cached: no request at all, so it works offline
      useHub({});
      expect(await loadDocuments("org/stories", dir)).toEqual(["a story", "another story"]);
      expect(requests).toEqual([]);
    },
  );

  it.skipIf(!writer)(`picks the config and split named, into opts.cacheDir${NEEDS_WRITER}`, async () => {
    const url = (config: string, split: string) => `/api/datasets/multi/parquet/${config}/${split}/0.parquet`;
    useHub({
      "/api/datasets/multi/parquet": {
        en: { train: [url("en", "train")] },
        fr: { test: [base + url("fr", "test")] },
      },
      [url("fr", "test")]: parquet({ text: ["bonjour"] }),
    });
    const cacheDir = path.join(dir, "elsewhere");
    expect(await loadDocuments("multi:fr:test", dir, { cacheDir })).toEqual(["bonjour"]);
    expect(fs.readdirSync(path.join(cacheDir, "multi"))).toEqual(["fr-test-shard0.parquet"]);
  });

  it("a dataset, config or split the hub does not have: errors listing what there is", async () => {
    useHub({
      "/api/datasets/org/one/parquet": { default: { train: ["/x.parquet"], validation: ["/y.parquet"] } },
      "/api/datasets/org/two/parquet": { en: { train: ["/x.parquet"] }, fr: { train: ["/y.parquet"] } },
      "/api/datasets/org/gated/parquet": 401,
    });
    expect(await failure(loadDocuments("org/nope", dir))).toMatch(/dataset org\/nope: not found on the hub/);
    expect(await failure(loadDocuments("org/one:test", dir))).toMatch(
      /no split "test"; it has train, validation/,
    );
    expect(await failure(loadDocuments("org/two", dir))).toMatch(/none is default; choose one of en, fr/);
    expect(await failure(loadDocuments("org/two:de:train", dir))).toMatch(
      /no config "de"; choose one of en, fr/,
    );
    expect(await failure(loadDocuments("org/gated", dir))).toMatch(/refused access \(401\).*HF_TOKEN/);
  });

  it("a download that is not parquet: an error, and nothing left in the cache", async () => {
    useHub({
      "/api/datasets/org/html/parquet": { default: { train: ["/page.html"] } },
      "/page.html": Buffer.from("<html>rate limited</html>"),
    });
    const cacheDir = path.join(dir, "html-cache");
    expect(await failure(loadDocuments("org/html", dir, { cacheDir }))).toMatch(
      /page.html did not send a parquet/,
    );
    expect(fs.readdirSync(path.join(cacheDir, "org--html"))).toEqual([]);
  });

  it("an unreachable hub: says so, and what works offline", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    expect(await failure(loadDocuments("org/offline", dir))).toMatch(
      /could not reach the Hugging Face hub at http:\/\/127.0.0.1:\d+ \(.*ECONNREFUSED.*\); offline, use a local .*builtin:stories/,
    );
  });
});
