// Tokenizers (`--tokenizer_name`): the built-in byte-level tokenizer (the offline default), a local directory
// with a Hugging Face `tokenizer.json`, or a hub id. The last two go through @huggingface/transformers'
// AutoTokenizer, imported only when needed: loading that library (and its ONNX runtime) takes half a second.
import fs from "node:fs";
import path from "node:path";
import { causeMessage, hubEndpoint, isNetworkError, userCwd } from "@picotron/datasets";
import { UsageError } from "@picotron/argparse";
import { encodeBatch, tokenizeThreads } from "./encode_batch.ts";

export interface Tokenizer {
  /** "bytes", the tokenizer directory's absolute path, or the hub id: part of the token cache's key. */
  readonly name: string;
  /** The tokenizer's own vocabulary size (unpadded): every id it produces is below it. */
  readonly vocabSize: number;
  /** Appended after every document when not null. */
  readonly eosId: number | null;
  encode(text: string): Int32Array;
  /** Every text's tokens, on worker threads when num_proc > 1 (or TOKENIZERS_PARALLELISM is "true"). */
  encodeBatch(
    texts: readonly string[],
    num_proc: number,
    progress?: (done: number, total: number) => void,
  ): Promise<Int32Array[]>;
  /** The text of token ids (generation's output); special tokens such as EOS are left out. */
  decode(ids: ArrayLike<number>): string;
}

/** The user's data or tokenizer cannot be used: one line, no stack (a UsageError). */
export class TokenizerError extends UsageError {
  override name = "TokenizerError";
}

/** The vocabulary's padding multiple: fixed, so every parallel layout builds the same model. */
const VOCAB_MULTIPLE = 64;
const HUB_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

/** Vocabulary padded to a fixed multiple (64), independent of the parallel layout. */
export function paddedVocabSize(vocabSize: number, multiple: number = VOCAB_MULTIPLE): number {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new RangeError(`paddedVocabSize: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new RangeError(`paddedVocabSize: multiple must be a positive integer, got ${multiple}`);
  }
  return Math.ceil(vocabSize / multiple) * multiple;
}

/** UTF-8 bytes are the tokens (0..255); 256 is EOS. */
const bytesTokenizer: Tokenizer = {
  name: "bytes",
  vocabSize: 257,
  eosId: 256,
  encode(text: string): Int32Array {
    const bytes = new TextEncoder().encode(text);
    const ids = new Int32Array(bytes.length);
    ids.set(bytes); // a native widening copy: several hundred MB/s
    return ids;
  },
  encodeBatch(texts, num_proc, progress) {
    return encodeBatch(this, texts, tokenizeThreads(num_proc), progress);
  },
  decode(ids: ArrayLike<number>): string {
    // ids of a padded vocabulary's rows (257..) and EOS are no bytes; a cut multi-byte character becomes U+FFFD
    return new TextDecoder().decode(Uint8Array.from(Array.from(ids).filter((id) => id >= 0 && id < 256)));
  },
};

/** `name` undefined: the tokenizer of modelName when modelName is a local dir with tokenizer.json, else "bytes". */
export async function loadTokenizer(
  name: string | undefined,
  modelName: string,
  cwd: string = userCwd(),
): Promise<Tokenizer> {
  if (name === undefined) {
    const modelDir = path.resolve(cwd, modelName);
    return fs.existsSync(path.join(modelDir, "tokenizer.json")) ? fromLocalDir(modelDir) : bytesTokenizer;
  }
  if (name === "bytes") return bytesTokenizer;
  const dir = path.resolve(cwd, name);
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory() || !fs.existsSync(path.join(dir, "tokenizer.json"))) {
      throw new TokenizerError(`tokenizer ${dir}: expected a directory holding tokenizer.json`);
    }
    return fromLocalDir(dir);
  }
  if (/^[.~/\\]/.test(name) || !HUB_ID.test(name)) {
    throw new TokenizerError(
      `tokenizer "${name}": no such directory (${dir}), and not a hub id; use bytes, a local directory ` +
        `holding tokenizer.json, or a hub id such as HuggingFaceTB/SmolLM-135M`,
    );
  }
  return fromHub(name, cwd);
}

/** The subset of transformers.js' PreTrainedTokenizer that we use. */
interface HfTokenizer {
  eos_token_id?: number | null;
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts: { skip_special_tokens: boolean }): string;
  get_vocab(): Map<string, number> | Record<string, number>;
}

async function fromLocalDir(dir: string): Promise<Tokenizer> {
  if (!fs.existsSync(path.join(dir, "tokenizer_config.json"))) {
    // AutoTokenizer needs it to pick the tokenizer class, and it names the EOS token
    throw new TokenizerError(`tokenizer ${dir}: has tokenizer.json but no tokenizer_config.json`);
  }
  const { AutoTokenizer, env } = await import("@huggingface/transformers");
  env.allowLocalModels = true;
  let tok: HfTokenizer;
  try {
    // an absolute path is never taken for a hub id, so local_files_only keeps the load on this machine
    tok = (await AutoTokenizer.from_pretrained(dir, { local_files_only: true })) as unknown as HfTokenizer;
  } catch (err) {
    throw new TokenizerError(`tokenizer ${dir}: could not be loaded: ${(err as Error).message}`);
  }
  return wrap(dir, tok);
}

async function fromHub(id: string, cwd: string): Promise<Tokenizer> {
  const { AutoTokenizer, env } = await import("@huggingface/transformers");
  const endpoint = hubEndpoint();
  env.allowRemoteModels = true;
  env.remoteHost = `${endpoint}/`;
  // downloaded files are kept beside the datasets' and tokens' caches, so a later run works offline
  env.cacheDir = path.join(cwd, ".cache", "tokenizers");
  // transformers.js sends HF_TOKEN to huggingface.co only: send it to a mirror named by HF_ENDPOINT too
  const token = process.env.HF_TOKEN;
  const baseFetch = globalThis.fetch;
  env.fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!token || !url.startsWith(`${endpoint}/`)) return baseFetch(input, init);
    const headers = new Headers(init?.headers);
    if (!headers.has("Authorization")) headers.set("Authorization", `Bearer ${token}`);
    return baseFetch(input, { ...init, headers });
  };
  let tok: HfTokenizer;
  try {
    tok = (await AutoTokenizer.from_pretrained(id)) as unknown as HfTokenizer;
  } catch (err) {
    if (isNetworkError(err)) {
      throw new TokenizerError(
        `tokenizer "${id}": could not reach the Hugging Face hub at ${endpoint} (${causeMessage(err)}); ` +
          `offline, use --tokenizer_name bytes or a local directory holding tokenizer.json`,
      );
    }
    throw new TokenizerError(
      `tokenizer "${id}": could not be loaded from the hub at ${endpoint}: ${await whyNotOnHub(id, endpoint, err)}`,
    );
  }
  return wrap(id, tok);
}

/**
 * Why a hub tokenizer failed to load. transformers.js treats a missing tokenizer_config.json as "no tokenizer
 * files" and then fails on an undefined config, so ask the hub for that file to say what is really wrong.
 */
async function whyNotOnHub(id: string, endpoint: string, err: unknown): Promise<string> {
  const url = `${endpoint}/${id}/resolve/main/tokenizer_config.json`;
  const token = process.env.HF_TOKEN;
  const status = await fetch(url, {
    method: "HEAD",
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(10_000),
  }).then(
    (res) => res.status,
    () => 0,
  );
  if (status === 404) return `the hub has no ${url} (not a model id with a tokenizer?)`;
  if (status === 401 || status === 403)
    return `access refused (${status}): a private or gated repo needs HF_TOKEN`;
  return (err as Error).message;
}

function wrap(name: string, tok: HfTokenizer): Tokenizer {
  const vocab = tok.get_vocab();
  const ids = vocab instanceof Map ? [...vocab.values()] : Object.values(vocab);
  // added tokens may sit above the model's vocabulary: size the embedding by the largest id
  const vocabSize = ids.reduce((max, id) => Math.max(max, id + 1), 0);
  if (vocabSize === 0) throw new TokenizerError(`tokenizer ${name}: its vocabulary is empty`);
  const eos = tok.eos_token_id;
  return {
    name,
    vocabSize,
    eosId: typeof eos === "number" ? eos : null,
    // no BOS/EOS from the tokenizer's post-processor: the dataloader puts one EOS between documents
    encode: (text) => Int32Array.from(tok.encode(text, { add_special_tokens: false })),
    encodeBatch(texts, num_proc, progress) {
      return encodeBatch(this, texts, tokenizeThreads(num_proc), progress);
    },
    decode: (ids) => tok.decode(Array.from(ids), { skip_special_tokens: true }),
  };
}
