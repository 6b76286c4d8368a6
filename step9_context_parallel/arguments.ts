// The command-line flags (the tutorial's names), checked before any work starts.
import fs from "node:fs";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";

const positiveInt = (name: string) => (v: number) => {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return v;
};
const positive = (name: string) => (v: number) => {
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${name} must be a positive number, got ${v}`);
  return v;
};
const nonNegative = (name: string) => (v: number) => {
  if (!(v >= 0)) throw new Error(`--${name} must be >= 0, got ${v}`);
  return v;
};

export function parseArgs(processArgv: string[]) {
  // `pnpm --filter step9 train -- --flag` passes the "--" through: drop it so the flags parse as flags.
  const argv = hideBin(processArgv);
  if (argv[0] === "--") argv.shift();
  const args = yargs(argv)
    // a flag given twice keeps its last value (as Python's argparse), instead of becoming an array
    .parserConfiguration({ "duplicate-arguments-array": false })
    .scriptName("train")
    .usage(
      "Step 9: train the tutorial's Llama on real text, its layers split into --pp_size pipeline stages (schedule: --pp_engine), each split over --tp_size ranks, each sequence over --cp_size ranks (ring attention), and replicated --dp_size times",
    )
    .options({
      // Environment
      omp_num_threads: {
        type: "number",
        coerce: positiveInt("omp_num_threads"),
        describe: "CPU threads per rank (default: cores / ranks)",
      },
      // Model
      model_name: {
        type: "string",
        default: "HuggingFaceTB/SmolLM-135M",
        describe: "preset, local dir with config.json, or hub id",
      },
      num_hidden_layers: { type: "number", default: 2, coerce: positiveInt("num_hidden_layers") },
      num_attention_heads: { type: "number", default: 9, coerce: positiveInt("num_attention_heads") },
      num_key_value_heads: { type: "number", default: 3, coerce: positiveInt("num_key_value_heads") },
      // not in the tutorial's flags: shrink the preset's widths for a quick experiment on a laptop
      hidden_size: {
        type: "number",
        coerce: positiveInt("hidden_size"),
        describe: "override the preset's hidden size",
      },
      intermediate_size: {
        type: "number",
        coerce: positiveInt("intermediate_size"),
        describe: "override the preset's MLP width",
      },
      init_from_pretrained: {
        type: "boolean",
        default: false,
        describe: "load --model_name (a local HF Llama dir: config.json + model.safetensors)",
      },
      // Dataset
      dataset_name: {
        type: "string",
        default: "builtin:stories",
        describe: "builtin:stories, a .txt/.jsonl/.parquet file, or a hub dataset id",
      },
      tokenizer_name: {
        type: "string",
        describe:
          "bytes, a local dir with tokenizer.json, or a hub id (default: from --model_name, else bytes)",
      },
      // Training
      seed: { type: "number", default: 42 },
      learning_rate: { type: "number", default: 1e-3, coerce: nonNegative("learning_rate") },
      lr_scheduler: {
        choices: ["constant", "cosine"] as const,
        default: "cosine" as const,
        describe: "cosine: linear warmup, then cosine decay to --min_lr",
      },
      warmup_steps: { type: "number", default: 10, coerce: nonNegative("warmup_steps") },
      min_lr: { type: "number", default: 1e-4, coerce: nonNegative("min_lr") },
      weight_decay: { type: "number", default: 0.01, coerce: nonNegative("weight_decay") },
      max_grad_norm: {
        type: "number",
        default: 1.0,
        coerce: nonNegative("max_grad_norm"),
        describe: "clip gradients to this global norm (0: off)",
      },
      seq_len: { type: "number", default: 128, coerce: positiveInt("seq_len") },
      micro_batch_size: { type: "number", default: 16, coerce: positiveInt("micro_batch_size") },
      gradient_accumulation_steps: {
        type: "number",
        default: 1,
        coerce: positiveInt("gradient_accumulation_steps"),
      },
      max_tokens: { type: "number", default: 262144, coerce: positiveInt("max_tokens") },
      // Distributed
      tp_size: {
        type: "number",
        default: 1,
        coerce: positiveInt("tp_size"),
        describe: "tensor parallel size",
      },
      dp_size: { type: "number", default: 1, coerce: positiveInt("dp_size"), describe: "data parallel size" },
      bucket_cap_mb: {
        type: "number",
        default: 25,
        coerce: positive("bucket_cap_mb"),
        describe: "size of a data-parallel gradient bucket, in MiB",
      },
      pp_size: {
        type: "number",
        default: 1,
        coerce: positiveInt("pp_size"),
        describe: "pipeline parallel size",
      },
      pp_engine: {
        choices: ["1f1b", "afab"] as const,
        default: "afab" as const,
        describe: "pipeline schedule: all-forward-all-backward or one-forward-one-backward",
      },
      cp_size: {
        type: "number",
        default: 1,
        coerce: positiveInt("cp_size"),
        describe: "context parallel size",
      },
      hostfile: { type: "string", describe: "OpenMPI hostfile, to run on several machines" },
      // Logging and checkpoints
      run_name: { type: "string", default: "default_run" },
      runs_dir: {
        type: "string",
        default: "runs",
        describe: "metrics go to runs_dir/run_name/metrics.jsonl",
      },
      save_dir: { type: "string", describe: "checkpoint folder (unset: no checkpoints)" },
      save_frequency: {
        type: "number",
        default: 0,
        coerce: nonNegative("save_frequency"),
        describe: "save every N steps (0: only at the end or on Ctrl-C)",
      },
      resume: {
        type: "boolean",
        default: false,
        describe: "continue from the newest checkpoint in --save_dir",
      },
      trace: {
        type: "boolean",
        default: false,
        describe: "write a timeline of every rank to runs_dir/run_name/trace.json (Chrome trace format)",
      },
    })
    .check((a) => {
      if (a.resume && !a.save_dir) throw new Error("--resume needs --save_dir");
      // context parallelism gives each cp rank an equal, contiguous slice of every sequence
      if (a.seq_len % a.cp_size !== 0) {
        throw new Error(
          `--seq_len ${a.seq_len} is not divisible by --cp_size ${a.cp_size}: each cp rank takes seq_len / cp_size positions of every sequence`,
        );
      }
      const cwd = process.env.INIT_CWD ?? process.cwd();
      if (a.hostfile && !fs.existsSync(path.resolve(cwd, a.hostfile)))
        throw new Error(`--hostfile ${a.hostfile}: no such file`);
      if (a.init_from_pretrained) {
        const dir = path.resolve(cwd, a.model_name);
        if (!fs.existsSync(path.join(dir, "config.json"))) {
          throw new Error(
            `--init_from_pretrained needs --model_name to be a local HF Llama directory; ${dir} has no config.json`,
          );
        }
      }
      return true;
    })
    .strict()
    .help()
    .parseSync();
  return args;
}

export type Args = ReturnType<typeof parseArgs>;
