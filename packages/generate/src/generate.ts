// Autoregressive generation: the model predicts the next token from the logits of the last position,
// greedily (temperature 0) or by sampling softmax(logits / T) over the top_k most likely tokens with a
// seeded generator. With the KV cache (the default) the prompt is run once and every later step feeds
// only the new token, its attention reading the cached keys/values; without it every step reruns the
// whole sequence. Both give the same tokens (tested), the cache in O(seq) work a step instead of O(seq^2).
import { UsageError } from "@picotron/argparse";
import { Generator, noGrad, Tensor } from "@picotron/tensor";
import type { Tokenizer } from "@picotron/transformers";

/** A step's KVCache (model.ts): each layer's past keys/values and the next position. */
export interface KVCache {
  layers: { k: Tensor; v: Tensor }[];
  offset: number;
}

/** What generation needs of a step's Llama (typed structurally: every step has its own model.ts). */
export interface CausalLM {
  readonly config: { max_position_embeddings: number };
  forward(input_ids: Tensor, cache?: KVCache): Tensor;
}

export interface GenerateOptions {
  max_new_tokens: number;
  /** 0: greedy (argmax, reproducible); > 0: sample from softmax(logits / temperature). */
  temperature?: number;
  /** Sample among the top_k most likely tokens only; 0: all of them. */
  top_k?: number;
  seed?: number;
  /** false: rerun the whole sequence every step (the reference the cache must equal). */
  use_cache?: boolean;
  /** Only ids below it are generated: the tokenizer's own vocabulary (the model's is padded to 64). */
  vocab_size?: number;
}

/** The prompt's ids followed by max_new_tokens generated ones (batch 1). */
export function generate(model: CausalLM, input_ids: ArrayLike<number>, opts: GenerateOptions): number[] {
  const { max_new_tokens, temperature = 0, top_k = 0, seed = 0, use_cache = true } = opts;
  const ids = Array.from(input_ids);
  if (ids.length === 0) throw new UsageError("generate: the prompt has no tokens");
  const max_pos = model.config.max_position_embeddings;
  if (ids.length + max_new_tokens > max_pos)
    throw new UsageError(
      `the prompt's ${ids.length} tokens + --max_new_tokens ${max_new_tokens} exceed the model's max_position_embeddings ${max_pos}`,
    );
  const gen = new Generator(seed, "generate");
  const row = (t: number[]) => new Tensor(Int32Array.from(t), [1, t.length]);
  return noGrad(() => {
    const cache: KVCache | undefined = use_cache ? { layers: [], offset: 0 } : undefined;
    let logits = model.forward(row(ids), cache); // the prompt, once
    for (let i = 0; i < max_new_tokens; i++) {
      const next = pick(lastRow(logits, opts.vocab_size), temperature, top_k, gen);
      ids.push(next);
      if (i === max_new_tokens - 1) break;
      logits = cache ? model.forward(row([next]), cache) : model.forward(row(ids));
    }
    return ids;
  });
}

/** The logits of the last position, [1, seq, vocab] -> the first vocab_size of them. */
function lastRow(logits: Tensor, vocab_size?: number): Float32Array {
  const [, seq, vocab] = logits.shape as [number, number, number];
  const v = logits.contiguous().values() as Float32Array;
  return v.subarray((seq - 1) * vocab, (seq - 1) * vocab + Math.min(vocab, vocab_size ?? vocab));
}

/** The next token: the argmax (the lowest id on ties), or a draw from the tempered top_k. */
function pick(logits: Float32Array, temperature: number, top_k: number, gen: Generator): number {
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  // the candidates by logit, highest first (ties: lower id first), cut to top_k
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const candidates = top_k > 0 ? order.slice(0, top_k) : order;
  const max = logits[candidates[0]!]!;
  const weights = candidates.map((i) => Math.exp((logits[i]! - max) / temperature)); // softmax, unnormalized
  let u = gen.random() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < candidates.length; j++) {
    u -= weights[j]!;
    if (u < 0) return candidates[j]!;
  }
  return candidates[candidates.length - 1]!; // rounding left u at 0
}

/** The prompt and its greedy continuation as text (a short sample at the end of a training run). */
export function sample(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompt: string,
  max_new_tokens: number,
): string {
  const prompt_ids = tokenizer.encode(prompt);
  // as many new tokens as asked, or as the model's context still holds (a run trained on short sequences)
  const room = model.config.max_position_embeddings - prompt_ids.length;
  const n = Math.min(max_new_tokens, room);
  if (n <= 0) return prompt;
  return tokenizer.decode(
    generate(model, prompt_ids, { max_new_tokens: n, vocab_size: tokenizer.vocabSize }),
  );
}
