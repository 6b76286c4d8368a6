// Datasets (`--dataset_name`): where the documents come from.
//   builtin:stories          the built-in corpus (the default: works offline)
//   path/to/file.txt         one document: the whole file
//   path/to/file.jsonl       one document per line, from its "text" field
//   path/to/file.parquet     one document per row of its "text" column
//   owner/name[:config][:split]   a Hugging Face hub dataset: the first parquet shard of the split (default:
//                            train) of the hub's parquet conversion, downloaded once and cached on disk
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { builtinStories } from "./builtin_corpus.ts";
import { causeMessage, hubEndpoint, userCwd } from "./hub.ts";
import { UsageError } from "@picotron/argparse";

/** The user's data or tokenizer cannot be used: one line, no stack (a UsageError). */
export class DatasetError extends UsageError {
  override name = "DatasetError";
}

const BUILTIN: Record<string, () => string[]> = { "builtin:stories": () => builtinStories() };
const LOCAL_FORMATS = [".txt", ".jsonl", ".parquet"];
// a hub id (owner/name or name) with an optional config and split; no part may start with a dot
const HUB_SPEC = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?(:[A-Za-z0-9][\w.-]*){0,2}$/;
const LIST_TIMEOUT_MS = 30_000;

/** Reads the dataset's documents (plain strings, in a fixed order). */
export async function loadDocuments(
  datasetName: string,
  cwd: string = userCwd(),
  opts: { cacheDir?: string } = {},
): Promise<string[]> {
  const docs = await readDataset(datasetName, cwd, opts.cacheDir ?? path.join(cwd, ".cache", "datasets"));
  if (!docs.some((d) => d.length > 0)) {
    throw new DatasetError(`dataset ${datasetName}: no text in it (${docs.length} documents, all empty)`);
  }
  return docs;
}

async function readDataset(name: string, cwd: string, cacheDir: string): Promise<string[]> {
  if (name.startsWith("builtin:")) {
    const make = BUILTIN[name];
    if (!make) {
      throw new DatasetError(
        `unknown built-in dataset ${name}; the built-in ones are: ${Object.keys(BUILTIN)}`,
      );
    }
    return make();
  }
  const file = path.resolve(cwd, name);
  const ext = path.extname(name).toLowerCase();
  if (fs.existsSync(file) || LOCAL_FORMATS.includes(ext) || /^[.~/\\]/.test(name)) {
    if (!fs.existsSync(file)) throw new DatasetError(`dataset file not found: ${file}`);
    if (!fs.statSync(file).isFile()) throw new DatasetError(`dataset ${file} is not a file`);
    if (ext === ".txt") return [stripBom(fs.readFileSync(file, "utf8"))];
    if (ext === ".jsonl") return readJsonl(file);
    if (ext === ".parquet") return readParquet(file);
    throw new DatasetError(`dataset ${file}: unsupported file type; use ${LOCAL_FORMATS.join(", ")}`);
  }
  if (!HUB_SPEC.test(name)) {
    throw new DatasetError(
      `dataset "${name}" is neither a file (${file} does not exist) nor a hub dataset id (owner/name[:split])`,
    );
  }
  return readParquet(await downloadHubParquet(name, cacheDir));
}

const stripBom = (s: string) => (s.charCodeAt(0) === 0xfeff ? s.slice(1) : s);

async function readJsonl(file: string): Promise<string[]> {
  const docs: string[] = [];
  // streamed line by line: a large file need not fit in one string
  const lines = readline.createInterface({ input: fs.createReadStream(file, "utf8"), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const raw of lines) {
    const line = ++lineNo === 1 ? stripBom(raw) : raw;
    if (line.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new DatasetError(`${file}:${lineNo}: not valid JSON (${(err as Error).message})`);
    }
    const text = (record as { text?: unknown } | null)?.text;
    if (typeof text !== "string") {
      throw new DatasetError(`${file}:${lineNo}: expected an object with a string "text" field`);
    }
    docs.push(text);
  }
  return docs;
}

async function readParquet(file: string): Promise<string[]> {
  try {
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    if (!columns.includes("text")) {
      throw new DatasetError(`${file}: no "text" column; its columns are: ${columns.join(", ")}`);
    }
    const rows = await parquetReadObjects({ file: buffer, metadata, columns: ["text"] });
    const docs: string[] = [];
    rows.forEach((row, i) => {
      const text: unknown = row.text;
      if (text === null || text === undefined) return; // a missing value: no document
      if (typeof text !== "string") {
        throw new DatasetError(`${file}: row ${i + 1}: the "text" column holds ${typeof text}, not text`);
      }
      docs.push(text);
    });
    return docs;
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(`${file}: not a readable parquet file: ${(err as Error).message}`);
  }
}

/** GET from the hub: HF_TOKEN goes to the hub's own address only (redirects elsewhere are pre-signed). */
async function hubGet(url: string, what: string, timeoutMs?: number): Promise<Response> {
  const endpoint = hubEndpoint();
  const headers = new Headers();
  if (process.env.HF_TOKEN && url.startsWith(`${endpoint}/`)) {
    headers.set("Authorization", `Bearer ${process.env.HF_TOKEN}`);
  }
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined });
  } catch (err) {
    throw new DatasetError(
      `${what}: could not reach the Hugging Face hub at ${endpoint} (${causeMessage(err)}); offline, use a ` +
        `local .txt/.jsonl/.parquet file or builtin:stories (the default), or a dataset downloaded before`,
    );
  }
  if (res.ok) return res;
  await res.body?.cancel();
  if (res.status === 401 || res.status === 403) {
    throw new DatasetError(
      `${what}: the hub refused access (${res.status}): a private or gated dataset needs HF_TOKEN`,
    );
  }
  if (res.status === 404) {
    throw new DatasetError(`${what}: not found on the hub at ${endpoint} (404 for ${url})`);
  }
  throw new DatasetError(`${what}: the hub answered ${res.status} ${res.statusText} for ${url}`);
}

/** The hub's parquet conversion of a dataset: config -> split -> shard URLs, in order. */
type ParquetListing = Record<string, Record<string, string[]>>;

function checkListing(json: unknown, what: string): ParquetListing {
  const isUrls = (v: unknown) => Array.isArray(v) && v.every((u) => typeof u === "string");
  const isSplits = (v: unknown) => typeof v === "object" && v !== null && Object.values(v).every(isUrls);
  if (
    typeof json !== "object" ||
    json === null ||
    Array.isArray(json) ||
    !Object.values(json).every(isSplits)
  ) {
    throw new DatasetError(
      `${what}: unexpected answer from the hub's parquet listing: ${JSON.stringify(json)}`,
    );
  }
  return json as ParquetListing;
}

/**
 * The first parquet shard of the dataset's split, from the cache or downloaded into it. The listing comes from
 * the hub's `/api/datasets/<id>/parquet` (the parquet conversion every public dataset gets), served by the hub
 * itself, so it works through HF_ENDPOINT mirrors too.
 */
async function downloadHubParquet(spec: string, cacheDir: string): Promise<string> {
  const [id, ...rest] = spec.split(":") as [string, ...string[]];
  const config = rest.length === 2 ? rest[0] : undefined;
  const split = rest.at(-1) ?? "train";
  const cached = path.join(cacheDir, id.replace("/", "--"), `${config ?? "auto"}-${split}-shard0.parquet`);
  if (fs.existsSync(cached)) return cached;

  const what = `dataset ${spec}`;
  const api = `${hubEndpoint()}/api/datasets/${id}/parquet`;
  const listing = checkListing(await (await hubGet(api, what, LIST_TIMEOUT_MS)).json(), what);
  const configs = Object.keys(listing);
  if (configs.length === 0) throw new DatasetError(`${what}: the hub has no parquet files for it`);
  // no config named: "default", or the only one there is
  const chosen = config ?? (configs.length === 1 ? configs[0]! : "default");
  const splits = listing[chosen];
  if (!splits) {
    throw new DatasetError(
      `${what}: ${config ? `no config "${config}"` : "several configs and none is default"}; ` +
        `choose one of ${configs.join(", ")} as ${id}:<config>:${split}`,
    );
  }
  const shards = splits[split];
  if (!shards?.length) {
    throw new DatasetError(`${what}: no split "${split}"; it has ${Object.keys(splits).join(", ")}`);
  }
  const url = new URL(shards[0]!, `${hubEndpoint()}/`).href;

  const res = await hubGet(url, what);
  if (!res.body) throw new DatasetError(`${what}: the hub sent an empty answer for ${url}`);
  fs.mkdirSync(path.dirname(cached), { recursive: true });
  // written aside and renamed once complete and readable: an interrupted download never looks cached
  const part = `${cached}.${process.pid}.part`;
  try {
    const size = Number(res.headers.get("content-length"));
    console.log(`downloading ${url}${size ? ` (${(size / 1e6).toFixed(1)} MB)` : ""} -> ${cached}`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), fs.createWriteStream(part));
    await parquetMetadataAsync(await asyncBufferFromFile(part)).catch((err: Error) => {
      throw new DatasetError(`${what}: ${url} did not send a parquet file (${err.message})`);
    });
    fs.renameSync(part, cached);
  } catch (err) {
    fs.rmSync(part, { force: true });
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(`${what}: downloading ${url} failed: ${causeMessage(err)}`);
  }
  return cached;
}
