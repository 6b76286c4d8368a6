// The tokenized dataset of the tutorial's dataloader (its tokenizer_group_text, run through dataset.map):
// every document's tokens, an EOS after each (when the tokenizer has one), concatenated into one stream of
// which only the tokens that whole chunks of seq_len + 1 use are kept.

/** What grouping needs of a tokenizer. */
export interface TextEncoder {
  encode(text: string): Int32Array;
  readonly eosId: number | null;
  /** Encodes many texts, on worker threads for num_proc > 1 (our tokenizers have it; else one by one). */
  encodeBatch?(
    texts: readonly string[],
    num_proc: number,
    progress: (done: number, total: number) => void,
  ): Promise<Int32Array[]>;
}

/** Chunks of seq_len + 1 tokens, overlapping by one token, that fit in a stream of n tokens. */
export function numChunks(n: number, seqLen: number): number {
  return n < seqLen + 1 ? 0 : Math.floor((n - 1) / seqLen);
}

/**
 * Tokenizes and groups `documents` with `num_proc` worker threads (the tokens do not depend on it);
 * `progress(done, total)` is called as documents finish.
 */
export async function tokenizer_group_text(
  documents: readonly string[],
  tokenizer: TextEncoder,
  seqLen: number,
  num_proc: number = 1,
  progress: (done: number, total: number) => void = () => {},
): Promise<Int32Array> {
  const encoded = tokenizer.encodeBatch
    ? await tokenizer.encodeBatch(documents, num_proc, progress)
    : documents.map((doc, i) => {
        const ids = tokenizer.encode(doc);
        progress(i + 1, documents.length);
        return ids;
      });
  const eos = tokenizer.eosId === null ? [] : [Int32Array.of(tokenizer.eosId)];
  const parts = encoded.flatMap((ids) => [ids, ...eos]);
  const length = parts.reduce((n, p) => n + p.length, 0);
  const chunks = numChunks(length, seqLen);
  const stream = new Int32Array(chunks === 0 ? length : chunks * seqLen + 1);
  let offset = 0;
  for (const p of parts) {
    if (offset >= stream.length) break;
    const take = Math.min(p.length, stream.length - offset);
    stream.set(p.subarray(0, take), offset);
    offset += take;
  }
  return stream;
}
