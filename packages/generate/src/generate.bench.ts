// Generation speed with and without the KV cache, on the default step-3 model shape (SmolLM-135M's
// widths, 2 layers, the bytes tokenizer's padded vocabulary of 320): 128 new tokens after a 16-token prompt.
// Without the cache every token reruns the whole sequence, so its cost grows with the length.
import { PRESETS } from "@picotron/transformers";
import { Llama } from "../../../step3_dataloader/model.ts";
import { generate } from "./generate.ts";

const config = { ...PRESETS["HuggingFaceTB/SmolLM-135M"]!, num_hidden_layers: 2, vocab_size: 320 };
const model = new Llama(config);
const prompt = Array.from({ length: 16 }, (_, i) => 65 + i);
const max_new_tokens = 128;

// warm-up: the kernels are built once per shape (every sequence length), not timed
generate(model, prompt, { max_new_tokens });
generate(model, prompt, { max_new_tokens, use_cache: false });
const results: Record<string, number[]> = {};
for (const use_cache of [true, false]) {
  const start = performance.now();
  const ids = generate(model, prompt, { max_new_tokens, use_cache });
  const seconds = (performance.now() - start) / 1000;
  results[use_cache ? "cache" : "no cache"] = ids;
  console.log(
    `${use_cache ? "with KV cache   " : "without KV cache"}: ${(max_new_tokens / seconds).toFixed(1)} tokens/s ` +
      `(${max_new_tokens} new tokens after ${prompt.length} in ${seconds.toFixed(2)} s)`,
  );
}
const same = results["cache"]!.every((id, i) => id === results["no cache"]![i]);
console.log(`same tokens: ${same}`);
