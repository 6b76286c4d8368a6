// Tokenizing many documents on several threads: what `dataset.map(..., num_proc=N)` does with N processes in
// the Python. Each worker thread loads the same tokenizer (by its name) and encodes one contiguous shard of
// the documents; the shards are joined in order, so the tokens are exactly one thread's.
import os from "node:os";
import { Worker } from "node:worker_threads";
import { userCwd } from "@picotron/datasets";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Threads to tokenize with: --num_proc when above 1. With one process, the tokenizer may use its own threads
 * when TOKENIZERS_PARALLELISM is "true" (Hugging Face tokenizers' switch; its forked map workers turn it off).
 */
export function tokenizeThreads(num_proc: number): number {
  if (num_proc > 1) return num_proc;
  return process.env.TOKENIZERS_PARALLELISM === "true" ? os.availableParallelism() : 1;
}

/** Every document's tokens, encoded on `threads` worker threads (1: on this thread). */
export async function encodeBatch(
  tokenizer: Tokenizer,
  texts: readonly string[],
  threads: number,
  progress: (done: number, total: number) => void = () => {},
): Promise<Int32Array[]> {
  const shards = Math.min(threads, texts.length);
  if (shards <= 1) {
    return texts.map((text, i) => {
      const ids = tokenizer.encode(text);
      progress(i + 1, texts.length);
      return ids;
    });
  }
  const done = new Array<number>(shards).fill(0);
  const bounds = Array.from({ length: shards + 1 }, (_, w) => Math.round((w * texts.length) / shards));
  const results = await Promise.all(
    bounds.slice(0, -1).map((start, w) =>
      runShard(tokenizer.name, texts.slice(start, bounds[w + 1]), (n) => {
        done[w] = n;
        progress(
          done.reduce((a, b) => a + b, 0),
          texts.length,
        );
      }),
    ),
  );
  return results.flat();
}

interface ShardResult {
  /** The shard's tokens back to back, and each document's length. */
  flat: Int32Array;
  lengths: Int32Array;
}

function runShard(name: string, texts: string[], progress: (done: number) => void): Promise<Int32Array[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./encode_worker.mjs", import.meta.url), {
      workerData: { name, cwd: userCwd(), texts },
    });
    worker.on("message", (msg: { done: number } | ShardResult) => {
      if ("done" in msg) return progress(msg.done);
      const docs: Int32Array[] = [];
      let offset = 0;
      for (const n of msg.lengths) docs.push(msg.flat.subarray(offset, (offset += n)));
      resolve(docs);
    });
    worker.on("error", reject);
    worker.on("exit", (code) => {
      if (code !== 0) reject(new Error(`a tokenizer thread exited with code ${code}`));
    });
  });
}
