// Step 2: the same training step, now on a grid of MPI processes (dp x pp x tp). Every rank builds the
// process-group manager; each still runs the whole model (the parallelisms come in later steps).
//   pnpm --filter step2 train -- --tp_size 2 --dp_size 2 --num_hidden_layers 2
import { parse_args } from "@picotron/argparse";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import { print, randint, to_readable_format } from "./utils.ts";

const args = parse_args("Training script for LLaMA model", {
  // Environment arguments
  omp_num_threads: { type: "int", min: 1, help: "CPU threads per rank (default: cores / ranks)" },
  // Model arguments
  model_name: {
    type: "str",
    default: "HuggingFaceTB/SmolLM-360M-Instruct",
    help: "preset, local dir or hub id",
  },
  num_hidden_layers: { type: "int", default: 32, min: 1 },
  num_attention_heads: { type: "int", default: 16, min: 1 },
  num_key_value_heads: { type: "int", default: 4, min: 1 },
  // Training arguments
  seed: { type: "int", default: 42, min: 0 },
  learning_rate: { type: "float", default: 3e-4, min: 0 },
  seq_len: { type: "int", default: 32, min: 1 },
  micro_batch_size: { type: "int", default: 1, min: 1 },
  // Distributed training arguments
  tp_size: { type: "int", default: 1, min: 1, help: "Tensor Parallel size" },
  dp_size: { type: "int", default: 1, min: 1, help: "Data Parallel size" },
  pp_size: { type: "int", default: 1, min: 1, help: "Pipeline Parallel size" },
  hostfile: { type: "str", help: "OpenMPI hostfile, to run on several machines" },
});

// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({ worldSize: args.dp_size * args.pp_size * args.tp_size, hostfile: args.hostfile });
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);

setup_process_group_manager(args.dp_size, args.pp_size, args.tp_size);
const is_print_rank = pgm.process_group_manager.global_rank === 0;

const model_config = await loadConfig(args.model_name);
model_config.num_hidden_layers = args.num_hidden_layers;
model_config.num_attention_heads = args.num_attention_heads;
model_config.num_key_value_heads = args.num_key_value_heads;
model_config.max_position_embeddings = args.seq_len;

const model = new Llama(model_config).initWeights(args.seed);
model.train();
print(`model: ${args.model_name}, ${to_readable_format(model.numParameters())} parameters`, is_print_rank);

pgm.process_group_manager.world_group.barrier();

const optimizer = new optim.AdamW(model.parameters(), { lr: args.learning_rate });

// Create dummy data: random token ids (the same on every rank: one seed)
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
print(
  `[rank ${pgm.process_group_manager.global_rank}] ${pgm.process_group_manager}, Loss: ${loss.item().toFixed(4)}`,
);
