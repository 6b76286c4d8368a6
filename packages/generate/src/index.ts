// @picotron/generate: text from a trained Llama (the step's model.ts), with or without a KV cache.
export { generate, sample, type CausalLM, type GenerateOptions, type KVCache } from "./generate.ts";
