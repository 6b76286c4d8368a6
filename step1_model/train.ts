// Step 1: build the Llama and take one AdamW step on random tokens (the tutorial's step1 train.py).
//   pnpm --filter step1 train -- --num_hidden_layers 4 --seq_len 64
import { parse_args } from "@picotron/argparse";
import { loadPretrained } from "@picotron/checkpoint";
import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import { print, randint, to_readable_format } from "./utils.ts";

const args = parse_args("Training script for LLaMA model", {
  // Environment arguments
  omp_num_threads: { type: "int", min: 1, help: "CPU threads per rank (default: cores / ranks)" },
  tokenizers_parallelism: { type: "str", default: "false", choices: ["true", "false"] },
  // Model arguments
  model_name: { type: "str", default: "HuggingFaceTB/SmolLM-360M-Instruct", help: "preset/folder/hub id" },
  num_hidden_layers: { type: "int", default: 32, min: 1 },
  num_attention_heads: { type: "int", default: 16, min: 1 },
  num_key_value_heads: { type: "int", default: 4, min: 1 },
  hidden_size: { type: "int", min: 1, help: "override the preset's hidden size" },
  intermediate_size: { type: "int", min: 1, help: "override the preset's MLP width" },
  init_from_pretrained: { type: "bool", default: false, help: "load --model_name, a local HF Llama folder" },
  // Training arguments
  seed: { type: "int", default: 42, min: 0 },
  learning_rate: { type: "float", default: 3e-4, min: 0 },
  seq_len: { type: "int", default: 32, min: 1 },
  micro_batch_size: { type: "int", default: 1, min: 1 },
  // Logging arguments
  run_name: { type: "str", default: "default_run" },
  use_wandb: { type: "bool", default: false, help: "log to Weights & Biases (needs WANDB_API_KEY)" },
});

const model_config = await loadConfig(args.model_name, { pretrained: args.init_from_pretrained });
if (!args.init_from_pretrained) {
  model_config.num_hidden_layers = args.num_hidden_layers;
  model_config.num_attention_heads = args.num_attention_heads;
  model_config.num_key_value_heads = args.num_key_value_heads;
  model_config.hidden_size = args.hidden_size ?? model_config.hidden_size;
  model_config.intermediate_size = args.intermediate_size ?? model_config.intermediate_size;
}
model_config.max_position_embeddings = Math.max(
  args.seq_len,
  args.init_from_pretrained ? model_config.max_position_embeddings : 0,
);

if (args.omp_num_threads) setNumThreads(args.omp_num_threads);
process.env.TOKENIZERS_PARALLELISM = args.tokenizers_parallelism;

const model = new Llama(model_config);
if (args.init_from_pretrained) loadPretrained(args.model_name, model);
else model.initWeights(args.seed);
model.train();
print(`model: ${args.model_name}, ${to_readable_format(model.numParameters())} parameters`);

const optimizer = new optim.AdamW(model.parameters(), { lr: args.learning_rate });

// Create dummy data: random token ids
const gen = new Generator(args.seed, "data");
const input_ids = randint(gen, model_config.vocab_size, [args.micro_batch_size, args.seq_len]);
const target_ids = randint(gen, model_config.vocab_size, [args.micro_batch_size, args.seq_len]);

// Training step
optimizer.zeroGrad();
const outputs = model.forward(input_ids); // [batch, seq, vocab]
const loss = lossFn(outputs, target_ids);
loss.backward();
optimizer.step();

print(`Loss: ${loss.item().toFixed(4)}`);
