// Step 2: the same training step, now on a grid of MPI processes (dp x pp x tp). Every rank builds the
// process-group manager; each still runs the whole model (the parallelisms come in later steps).
//   pnpm --filter step2 train -- --tp_size 2 --dp_size 2 --num_hidden_layers 2
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "./config.ts";
import { Llama, lossFn } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import { print, randint, toReadableFormat } from "./utils.ts";

const positive = (name: string) => (v: number) => {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return v;
};

// `pnpm --filter step2 train -- --flag` passes the "--" through: drop it so the flags parse as flags.
const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();

const args = yargs(argv)
  .scriptName("train")
  .usage("Step 2: one training step of the tutorial's Llama on every rank of a dp x pp x tp grid")
  .options({
    // Environment
    omp_num_threads: {
      type: "number",
      coerce: positive("omp_num_threads"),
      describe: "CPU threads per rank (default: cores / ranks)",
    },
    // Model
    model_name: {
      type: "string",
      default: "HuggingFaceTB/SmolLM-360M-Instruct",
      describe: "preset, local dir with config.json, or hub id",
    },
    num_hidden_layers: { type: "number", default: 32, coerce: positive("num_hidden_layers") },
    num_attention_heads: { type: "number", default: 16, coerce: positive("num_attention_heads") },
    num_key_value_heads: { type: "number", default: 4, coerce: positive("num_key_value_heads") },
    // Training
    seed: { type: "number", default: 42 },
    learning_rate: { type: "number", default: 3e-4 },
    seq_len: { type: "number", default: 32, coerce: positive("seq_len") },
    micro_batch_size: { type: "number", default: 1, coerce: positive("micro_batch_size") },
    // Distributed
    tp_size: { type: "number", default: 1, coerce: positive("tp_size"), describe: "tensor parallel size" },
    dp_size: { type: "number", default: 1, coerce: positive("dp_size"), describe: "data parallel size" },
    pp_size: { type: "number", default: 1, coerce: positive("pp_size"), describe: "pipeline parallel size" },
    hostfile: { type: "string", describe: "OpenMPI hostfile, to run on several machines" },
  })
  .strict()
  .help()
  .parseSync();

// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({ worldSize: args.dp_size * args.pp_size * args.tp_size, hostfile: args.hostfile });
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);

setup_process_group_manager(args.dp_size, args.pp_size, args.tp_size);
const { process_group_manager: grid } = pgm;
const isPrintRank = grid.global_rank === 0;
print(`process grid: ${grid}`, isPrintRank);

const modelConfig = await loadConfig(args.model_name);
modelConfig.num_hidden_layers = args.num_hidden_layers;
modelConfig.num_attention_heads = args.num_attention_heads;
modelConfig.num_key_value_heads = args.num_key_value_heads;
modelConfig.max_position_embeddings = args.seq_len;

const model = new Llama(modelConfig).initWeights(args.seed);
model.train();
print(`model: ${args.model_name}, ${toReadableFormat(model.numParameters())} parameters`, isPrintRank);

grid.world_group.barrier();

const optimizer = new optim.AdamW(model.parameters(), { lr: args.learning_rate });

// Dummy data: random token ids (the same on every rank: one seed)
const gen = new Generator(args.seed, "data");
const inputIds = randint(gen, modelConfig.vocab_size, [args.micro_batch_size, args.seq_len]);
const targetIds = randint(gen, modelConfig.vocab_size, [args.micro_batch_size, args.seq_len]);

// Training step
optimizer.zeroGrad();
const logits = model.forward(inputIds); // [batch, seq, vocab]
const loss = lossFn(logits, targetIds);
loss.backward();
optimizer.step();

// every rank reports, one whole line each
print(`[${grid}] Loss: ${loss.item().toFixed(4)}`);
