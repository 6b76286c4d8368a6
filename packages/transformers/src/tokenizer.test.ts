import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeBatch, tokenizeThreads } from "./encode_batch.ts";
import { loadTokenizer, paddedVocabSize, TokenizerError } from "./tokenizer.ts";

// A tiny BPE tokenizer in the tokenizers library's JSON format: words split on whitespace, merges l+o, lo+w, e+r.
const VOCAB = { "<unk>": 0, l: 1, o: 2, w: 3, e: 4, r: 5, n: 6, s: 7, t: 8, lo: 9, low: 10, er: 11 };
const TOKENIZER_JSON = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [
    {
      id: 12,
      content: "<|endoftext|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  ],
  normalizer: null,
  pre_tokenizer: { type: "Whitespace" },
  // like Llama's: a BOS-style special token before every text when special tokens are added
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<|endoftext|>": { id: "<|endoftext|>", ids: [12], tokens: ["<|endoftext|>"] } },
  },
  decoder: null,
  model: {
    type: "BPE",
    dropout: null,
    unk_token: "<unk>",
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    vocab: VOCAB,
    merges: ["l o", "lo w", "e r"],
  },
};
const TOKENIZER_CONFIG = { tokenizer_class: "PreTrainedTokenizerFast", eos_token: "<|endoftext|>" };
// worked out by hand from the merges: lower -> low|er, newest -> n|e|w|e|s|t, lowz -> low|<unk>
const TEXT = "lower newest lowz";
const IDS = [10, 11, 6, 4, 3, 4, 7, 8, 10, 0];

let dir: string;
const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN };

function writeTokenizerDir(name: string, files: Record<string, unknown>): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  for (const [file, json] of Object.entries(files))
    fs.writeFileSync(path.join(d, file), JSON.stringify(json));
  return d;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "picotron-tokenizer-"));
  writeTokenizerDir("tiny", { "tokenizer.json": TOKENIZER_JSON, "tokenizer_config.json": TOKENIZER_CONFIG });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe("bytes tokenizer", () => {
  it("uses the UTF-8 bytes as tokens, with EOS 256", async () => {
    const tok = await loadTokenizer("bytes", "HuggingFaceTB/SmolLM-135M", dir);
    expect([tok.name, tok.vocabSize, tok.eosId]).toEqual(["bytes", 257, 256]);
    const text = "héllo ✓\n";
    expect(Array.from(tok.encode(text))).toEqual(Array.from(Buffer.from(text, "utf8")));
    expect(tok.encode("")).toHaveLength(0);
  });

  it("is the default when --model_name is not a local directory with tokenizer.json", async () => {
    expect((await loadTokenizer(undefined, "HuggingFaceTB/SmolLM-135M", dir)).name).toBe("bytes");
    expect((await loadTokenizer(undefined, ".", dir)).name).toBe("bytes");
  });

  it("encodes a large text, one token per byte (its speed: pnpm --filter @picotron/transformers bench)", async () => {
    const tok = await loadTokenizer("bytes", "unused", dir);
    const text = "Once upon a time, there was a little fox. ".repeat(200_000); // 8.4 MB
    expect(tok.encode(text)).toHaveLength(text.length);
  });
});

describe("local tokenizer.json", () => {
  it("loads it through AutoTokenizer and encodes exactly, without special tokens", async () => {
    const tok = await loadTokenizer("tiny", "unused", dir);
    expect(tok.name).toBe(path.join(dir, "tiny"));
    expect(Array.from(tok.encode(TEXT))).toEqual(IDS);
    expect(tok.eosId).toBe(12);
    expect(tok.vocabSize).toBe(13); // 12 model tokens + the added EOS
  });

  it("is the default when --model_name is a local directory with tokenizer.json", async () => {
    const tok = await loadTokenizer(undefined, path.join(dir, "tiny"), "/");
    expect(Array.from(tok.encode(TEXT))).toEqual(IDS);
  });

  it("has no EOS when the config names none", async () => {
    const d = writeTokenizerDir("no-eos", {
      "tokenizer.json": TOKENIZER_JSON,
      "tokenizer_config.json": { tokenizer_class: "PreTrainedTokenizerFast" },
    });
    expect((await loadTokenizer(d, "unused", dir)).eosId).toBeNull();
  });

  it("rejects bad paths with the resolved path in the message", async () => {
    const noJson = writeTokenizerDir("empty", {});
    await expect(loadTokenizer("empty", "unused", dir)).rejects.toThrow(
      `${noJson}: expected a directory holding`,
    );
    const noConfig = writeTokenizerDir("no-config", { "tokenizer.json": TOKENIZER_JSON });
    await expect(loadTokenizer(noConfig, "unused", dir)).rejects.toThrow("no tokenizer_config.json");
    await expect(loadTokenizer("tiny/tokenizer.json", "unused", dir)).rejects.toThrow("expected a directory");
    await expect(loadTokenizer("./missing", "unused", dir)).rejects.toThrow(path.join(dir, "missing"));
    await expect(loadTokenizer("not a tokenizer!", "unused", dir)).rejects.toThrow(TokenizerError);
  });

  it("reports a broken tokenizer.json clearly", async () => {
    const d = writeTokenizerDir("broken", {
      "tokenizer.json": {},
      "tokenizer_config.json": TOKENIZER_CONFIG,
    });
    await expect(loadTokenizer(d, "unused", dir)).rejects.toThrow(`tokenizer ${d}: could not be loaded`);
  });
});

describe("hub tokenizer", () => {
  // a stand-in for the hub on 127.0.0.1 serving <id>/resolve/main/<file> for the repo "tiny-org/tok"
  let server: http.Server;
  let auth: (string | undefined)[] = [];
  beforeAll(async () => {
    const files: Record<string, unknown> = {
      "/tiny-org/tok/resolve/main/tokenizer.json": TOKENIZER_JSON,
      "/tiny-org/tok/resolve/main/tokenizer_config.json": TOKENIZER_CONFIG,
    };
    server = http.createServer((req, res) => {
      auth.push(req.headers.authorization);
      const url = (req.url ?? "").split("?")[0]!;
      const file = files[url];
      res.writeHead(file ? 200 : url.startsWith("/tiny-org/gated/") ? 401 : 404, {
        "content-type": "application/json",
      });
      res.end(file ? JSON.stringify(file) : '{"error":"Entry not found"}');
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const endpoint = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  it("downloads a hub id's tokenizer from HF_ENDPOINT, with HF_TOKEN", async () => {
    process.env.HF_ENDPOINT = endpoint();
    process.env.HF_TOKEN = "hf_test";
    auth = [];
    const tok = await loadTokenizer("tiny-org/tok", "unused", dir);
    expect([tok.name, tok.eosId, tok.vocabSize]).toEqual(["tiny-org/tok", 12, 13]);
    expect(Array.from(tok.encode(TEXT))).toEqual(IDS);
    expect(auth.length).toBeGreaterThan(0);
    expect(auth.every((a) => a === "Bearer hf_test")).toBe(true);
    // kept on disk under cwd, so a later run needs no network
    expect(fs.readdirSync(path.join(dir, ".cache", "tokenizers", "tiny-org", "tok")).sort()).toEqual([
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
  });

  it("a repo the hub does not have, or refuses: a TokenizerError saying which", async () => {
    process.env.HF_ENDPOINT = endpoint();
    await expect(loadTokenizer("tiny-org/missing", "unused", dir)).rejects.toThrow(
      /tokenizer "tiny-org\/missing": could not be loaded from the hub.*has no .*tokenizer_config.json/,
    );
    await expect(loadTokenizer("tiny-org/gated", "unused", dir)).rejects.toThrow(/refused \(401\).*HF_TOKEN/);
  });

  it("an unreachable hub: says so, and that bytes works offline", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    const err = await loadTokenizer("tiny-org/offline", "unused", dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as Error).message).toMatch(/could not reach the Hugging Face hub.*--tokenizer_name bytes/);
  });
});

describe("paddedVocabSize", () => {
  it("rounds up to a multiple of 64 (or the one given)", () => {
    expect([1, 64, 65, 257, 49152].map((v) => paddedVocabSize(v))).toEqual([64, 64, 128, 320, 49152]);
    expect(paddedVocabSize(257, 128)).toBe(384);
  });

  it("rejects a non-positive or fractional size", () => {
    expect(() => paddedVocabSize(0)).toThrow(/positive integer/);
    expect(() => paddedVocabSize(10.5)).toThrow(/positive integer/);
    expect(() => paddedVocabSize(10, 0)).toThrow(/multiple must be/);
  });
});

describe("encodeBatch (--num_proc, TOKENIZERS_PARALLELISM)", () => {
  const texts = Array.from(
    { length: 2500 },
    (_, i) => `lower newest ${"low ".repeat(i % 7)}tower ${i} héllo`,
  );

  it("gives on 3 worker threads exactly the tokens of one thread, in order, for both tokenizers", async () => {
    for (const name of ["bytes", "tiny"]) {
      const tok = await loadTokenizer(name, "unused", dir);
      const seen: number[] = [];
      const threaded = await tok.encodeBatch(texts, 3, (done) => seen.push(done));
      expect(threaded.map((ids) => Array.from(ids))).toEqual(texts.map((t) => Array.from(tok.encode(t))));
      expect(seen.at(-1)).toBe(texts.length); // progress reaches every document
    }
  });

  it("takes threads from --num_proc, else from TOKENIZERS_PARALLELISM", async () => {
    const saved = process.env.TOKENIZERS_PARALLELISM;
    try {
      process.env.TOKENIZERS_PARALLELISM = "false";
      expect([tokenizeThreads(4), tokenizeThreads(1)]).toEqual([4, 1]);
      process.env.TOKENIZERS_PARALLELISM = "true";
      expect(tokenizeThreads(1)).toBe(os.availableParallelism());
    } finally {
      if (saved === undefined) delete process.env.TOKENIZERS_PARALLELISM;
      else process.env.TOKENIZERS_PARALLELISM = saved;
    }
  });

  it("a tokenizer that a worker thread cannot load fails the batch with its message", async () => {
    const tok = await loadTokenizer("tiny", "unused", dir);
    const gone = { ...tok, name: path.join(dir, "removed") };
    await expect(encodeBatch(gone, texts, 2)).rejects.toThrow("no such directory");
  });
});
