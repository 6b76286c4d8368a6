// Step 2: the same training step on every rank of a dp x pp x tp grid of MPI processes (the parallelisms come later).
//   pnpm --filter step2 train -- --tp_size 2 --dp_size 2 --num_hidden_layers 2
import { parse_args } from "@picotron/argparse";
import { loadPretrained } from "@picotron/checkpoint";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "@picotron/transformers";
import * as wandb from "@picotron/wandb";
import { Llama, lossFn } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
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
  // Distributed training arguments
  tp_size: { type: "int", default: 1, min: 1, help: "Tensor Parallel size" },
  dp_size: { type: "int", default: 1, min: 1, help: "Data Parallel size" },
  pp_size: { type: "int", default: 1, min: 1, help: "Pipeline Parallel size" },
  pp_engine: { type: "str", default: "afab", choices: ["1f1b", "afab"] },
  hostfile: { type: "path", help: "OpenMPI hostfile, to run on several machines" },
  collective_timeout: { type: "float", min: 0, help: "seconds a rank waits for a peer (default 300)" },
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

// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({ ...args, worldSize: args.dp_size * args.pp_size * args.tp_size }); // + hostfile, timeout
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);
process.env.TOKENIZERS_PARALLELISM = args.tokenizers_parallelism;

setup_process_group_manager(args.dp_size, args.pp_size, args.tp_size);
const grid = pgm.process_group_manager;
const is_print_rank = grid.global_rank === 0;
if (is_print_rank && args.use_wandb)
  await wandb.init({ dir: "runs", name: args.run_name, config: args, use_wandb: true });

const model = new Llama(model_config);
if (args.init_from_pretrained) loadPretrained(args.model_name, model);
else model.initWeights(args.seed);
model.train();
print(`model: ${args.model_name}, ${to_readable_format(model.numParameters())} parameters`, is_print_rank);

grid.world_group.barrier();

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

// every rank reports, one whole line each
print(`[rank ${grid.global_rank}] ${grid}, Loss: ${loss.item().toFixed(4)}`);
wandb.log({ loss: loss.item() });
await wandb.finish();
