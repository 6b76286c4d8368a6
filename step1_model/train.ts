// Step 1: build the Llama and take one AdamW step on random tokens (the tutorial's step1 train.py).
//   pnpm --filter step1 train -- --num_hidden_layers 4 --seq_len 64
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "./config.ts";
import { Llama, lossFn } from "./model.ts";
import { print, randint, toReadableFormat } from "./utils.ts";

const positive = (name: string) => (v: number) => {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return v;
};

// `pnpm --filter step1 train -- --flag` passes the "--" through: drop it so the flags parse as flags.
const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();

const args = yargs(argv)
  .scriptName("train")
  .usage("Step 1: one training step of the tutorial's Llama on random tokens")
  .options({
    // Environment
    omp_num_threads: {
      type: "number",
      default: 1,
      coerce: positive("omp_num_threads"),
      describe: "CPU threads for the kernels",
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
  })
  .strict()
  .help()
  .parseSync();

setNumThreads(args.omp_num_threads);

const modelConfig = await loadConfig(args.model_name);
modelConfig.num_hidden_layers = args.num_hidden_layers;
modelConfig.num_attention_heads = args.num_attention_heads;
modelConfig.num_key_value_heads = args.num_key_value_heads;
modelConfig.max_position_embeddings = args.seq_len;

const model = new Llama(modelConfig).initWeights(args.seed);
model.train();
print(`model: ${args.model_name}, ${toReadableFormat(model.numParameters())} parameters`);

const optimizer = new optim.AdamW(model.parameters(), { lr: args.learning_rate });

// Dummy data: random token ids
const gen = new Generator(args.seed, "data");
const inputIds = randint(gen, modelConfig.vocab_size, [args.micro_batch_size, args.seq_len]);
const targetIds = randint(gen, modelConfig.vocab_size, [args.micro_batch_size, args.seq_len]);

// Training step
optimizer.zeroGrad();
const logits = model.forward(inputIds); // [batch, seq, vocab]
const loss = lossFn(logits, targetIds);
loss.backward();
optimizer.step();

print(`Loss: ${loss.item().toFixed(4)}`);
