// Generation on a tiny random model (step 1's Llama): the KV cache gives exactly the tokens of decoding
// without it, greedy decoding and seeded sampling are reproducible, top_k 1 is greedy.
import { describe, expect, it } from "vitest";
import { noGrad, Tensor } from "@picotron/tensor";
import { loadTokenizer } from "@picotron/transformers";
import { Llama, type KVCache } from "../../../step1_model/model.ts";
import { generate, sample } from "./generate.ts";

const config = {
  vocab_size: 320,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 128,
};
const model = new Llama(config);
const prompt = [79, 110, 99, 101, 32, 117, 112, 111, 110]; // "Once upon"

describe("generate", () => {
  it("decodes with the KV cache exactly the tokens it decodes without", () => {
    const cached = generate(model, prompt, { max_new_tokens: 40 });
    const uncached = generate(model, prompt, { max_new_tokens: 40, use_cache: false });
    expect(cached).toHaveLength(prompt.length + 40);
    expect(cached).toEqual(uncached);
  });

  it("gives the cached logits of several new tokens after a past equal to the whole sequence's", () => {
    const ids = [...prompt, 1, 2, 3, 4];
    const row = (t: number[]) => new Tensor(Int32Array.from(t), [1, t.length]);
    noGrad(() => {
      const whole = model.forward(row(ids)).values() as Float32Array;
      const cache: KVCache = { layers: [], offset: 0 };
      model.forward(row(ids.slice(0, 5)), cache);
      const rest = model.forward(row(ids.slice(5)), cache).values() as Float32Array; // past 5, 8 new
      expect(cache.offset).toBe(ids.length);
      const tail = whole.subarray(5 * config.vocab_size);
      const maxDiff = rest.reduce((m, x, i) => Math.max(m, Math.abs(x - tail[i]!)), 0);
      expect(maxDiff).toBeLessThan(1e-4);
    });
  });

  it("is reproducible: greedy twice, sampling with a seed; top_k 1 is greedy", () => {
    const greedy = generate(model, prompt, { max_new_tokens: 20 });
    expect(generate(model, prompt, { max_new_tokens: 20 })).toEqual(greedy);
    const opts = { max_new_tokens: 20, temperature: 1, top_k: 50, seed: 7 };
    const sampled = generate(model, prompt, opts);
    expect(generate(model, prompt, opts)).toEqual(sampled);
    expect(generate(model, prompt, { ...opts, use_cache: false })).toEqual(sampled);
    expect(generate(model, prompt, { ...opts, seed: 8 })).not.toEqual(sampled);
    expect(generate(model, prompt, { max_new_tokens: 20, temperature: 1.5, top_k: 1, seed: 3 })).toEqual(
      greedy,
    );
  });

  it("refuses more tokens than the model's positions", () => {
    expect(() => generate(model, prompt, { max_new_tokens: 128 })).toThrow(/max_position_embeddings/);
  });

  it("sample() returns the prompt and its continuation as text", async () => {
    const tokenizer = await loadTokenizer("bytes", "");
    const text = sample(model, tokenizer, "Once upon", 10);
    expect(text.startsWith("Once upon")).toBe(true);
    const ids = generate(model, prompt, { max_new_tokens: 10, vocab_size: 257 });
    expect(text).toBe(tokenizer.decode(ids));
  });
});
