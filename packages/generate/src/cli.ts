// `pnpm --filter stepN generate -- --checkpoint DIR --prompt "Once upon a time"`: text from a checkpoint of
// any layout of that step. pnpm runs the script inside the step's folder, so the step's own model.ts is the
// model; the checkpoint's shards are joined into whole tensors and the model runs on this one process.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parse_args, UsageError } from "@picotron/argparse";
import { latestCheckpoint } from "@picotron/checkpoint";
import { loadWholeModel } from "@picotron/checkpoint/export";
import type { Tensor } from "@picotron/tensor";
import { loadTokenizer, type LlamaConfig } from "@picotron/transformers";
import { generate, type CausalLM } from "./generate.ts";

const args = parse_args("Generate text from a checkpoint", {
  checkpoint: { type: "path", help: "a checkpoint folder (step_N) or a --save_dir (its newest checkpoint)" },
  prompt: { type: "str", default: "Once upon a time" },
  max_new_tokens: { type: "int", default: 50, min: 0 },
  temperature: { type: "float", default: 0, min: 0, help: "0: greedy" },
  top_k: { type: "int", default: 0, min: 0, help: "sample among the k most likely tokens; 0: all" },
  seed: { type: "int", default: 0 },
  tokenizer: {
    type: "str",
    help: "bytes, a folder with tokenizer.json or a hub id (default: the checkpoint's)",
  },
  no_kv_cache: { type: "bool", help: "rerun the whole sequence every token (the cache's reference)" },
});

/** A step's Llama: built from the checkpoint's config, then given its weights. */
interface StepLlama extends CausalLM {
  loadStateDict(state: Record<string, Tensor>): void;
}
type StepModule = { Llama: new (config: LlamaConfig) => StepLlama };

if (args.checkpoint === undefined)
  throw new UsageError("--checkpoint is required: a checkpoint folder (step_N) or a --save_dir");
const checkpoint = fs.existsSync(path.join(args.checkpoint, "state.json"))
  ? args.checkpoint
  : latestCheckpoint(args.checkpoint);
if (checkpoint === null)
  throw new UsageError(`${args.checkpoint}: no checkpoint there (no step_N folder with state.json)`);

const state = JSON.parse(fs.readFileSync(path.join(checkpoint, "state.json"), "utf8")) as {
  dataloader?: { tokenizer?: string };
};
const tokenizerName = args.tokenizer ?? state.dataloader?.tokenizer;
if (tokenizerName === undefined)
  throw new UsageError(`${checkpoint} does not name its tokenizer (an older checkpoint): give --tokenizer`);
const tokenizer = await loadTokenizer(tokenizerName, "");

const { config, weights } = loadWholeModel(checkpoint);
const { Llama } = (await import(pathToFileURL(path.join(process.cwd(), "model.ts")).href)) as StepModule;
const model = new Llama(config);
model.loadStateDict(weights);

const prompt = tokenizer.encode(args.prompt);
const start = performance.now();
const ids = generate(model, prompt, {
  max_new_tokens: args.max_new_tokens,
  temperature: args.temperature,
  top_k: args.top_k,
  seed: args.seed,
  use_cache: !args.no_kv_cache,
  vocab_size: tokenizer.vocabSize,
});
const seconds = (performance.now() - start) / 1000;
console.log(tokenizer.decode(ids));
console.error(
  `${ids.length - prompt.length} new tokens in ${seconds.toFixed(2)} s ` +
    `(${((ids.length - prompt.length) / seconds).toFixed(1)} tokens/s, ${args.no_kv_cache ? "no " : ""}KV cache) ` +
    `from ${checkpoint}`,
);
