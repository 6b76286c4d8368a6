// Step 10: ZeRO (zero.ts). The replicas of the cp x dp group stop all holding the same training state: each
// keeps 1/N of the AdamW moments (--zero_stage 1), of the gradients too (2), and of the weights too (3,
// gathered layer by layer). Stage 0 is step 9. The loss curve stays the baseline's.
//   pnpm --filter step10 train -- --dp_size 2 --zero_stage 2
//   pnpm --filter step10 train -- --dp_size 2 --pp_size 2 --tp_size 2 --num_attention_heads 8 --num_key_value_heads 4 --zero_stage 2
import { parse_args, UsageError } from "@picotron/argparse";
import { checkpoint_args, CheckpointManager, loadPretrained } from "@picotron/checkpoint";
import { agreeToStop, ensureLaunched, installStopHandler } from "@picotron/mpi-napi/launcher";
import { tracer } from "@picotron/profiler";
import { measurePeakFlops, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig, loadTokenizer, paddedVocabSize } from "@picotron/transformers";
import * as wandb from "@picotron/wandb";
import { DataParallelBucket } from "./data_parallel.ts";
import { MicroBatchDataLoader } from "./dataloader.ts";
import { Llama, lossFn } from "./model.ts";
import {
  distribute_layers,
  peak_activation_bytes,
  PipelineParallel,
  train_step_pipeline_1f1b,
  train_step_pipeline_afab,
  type PipelineModel,
} from "./pipeline_parallel.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import {
  apply_tensor_parallel,
  checkTensorParallel,
  gradNormTensorParallel,
  numParametersTensorParallel,
  shardedParameters,
} from "./tensor_parallel.ts";
import { get_mfu, print, to_readable_format } from "./utils.ts";
import { DataParallelReduceScatter, stateBytes, ZeroRedundancyOptimizer } from "./zero.ts";

/**
 * Each rank's loss is the mean over its share of the batch (its sequences, its slice of each): all of them are
 * the same size, so their average over the cp x dp group is the whole batch's loss.
 */
function all_reduce_loss_across_dp_cp_ranks(loss: number): number {
  const reduced_loss = new Float64Array([loss]);
  pgm.process_group_manager.cp_dp_group.allreduce(reduced_loss, "avg");
  // only the last stage has the loss: the others add 0, so every rank (the logging rank 0 too) gets it
  return sum_over_stages("all_reduce_loss", reduced_loss[0]!);
}

/** A number each pipeline stage holds its part of, summed over the stages. */
function sum_over_stages(name: string, x: number): number {
  const buf = new Float64Array([x]);
  tracer.span(name, "all-reduce", () => pgm.process_group_manager.pp_group.allreduce(buf, "sum"));
  return buf[0]!;
}

type DataParallelLlama = DataParallelBucket<Llama> | DataParallelReduceScatter<Llama>;

function train_step(model: Llama | DataParallelLlama, dataloader: MicroBatchDataLoader): number {
  let acc_loss = 0;
  for (let i = 0; i < dataloader.grad_acc_steps; i++) {
    const batch = dataloader.next();
    // enable gradient synchronization for the last micro-batch only: the earlier ones just accumulate
    if (!(model instanceof Llama)) model.require_backward_grad_sync = i === dataloader.grad_acc_steps - 1;
    const outputs = model.forward(batch.input_ids); // [batch, seq, vocab]
    // each micro-batch's mean loss, scaled so that the accumulated gradient is the whole batch's mean
    const loss = lossFn(outputs, batch.target_ids).div(dataloader.grad_acc_steps);
    loss.backward();
    acc_loss += loss.item();
  }
  // the last buckets' all-reduces may still be in flight: clipping and the optimizer need the averages
  if (!(model instanceof Llama)) model.finishGradientSynchronization();
  return acc_loss;
}

const args = parse_args("Training script for LLaMA model", {
  // Environment arguments
  omp_num_threads: { type: "int", min: 1, help: "CPU threads per rank (default: cores / ranks)" },
  tokenizers_parallelism: { type: "str", default: "false", choices: ["true", "false"] },
  // Model arguments
  model_name: { type: "str", default: "HuggingFaceTB/SmolLM-135M", help: "preset/folder/hub id" },
  num_hidden_layers: { type: "int", default: 2, min: 1 },
  num_attention_heads: { type: "int", default: 9, min: 1 },
  num_key_value_heads: { type: "int", default: 3, min: 1 },
  hidden_size: { type: "int", min: 1, help: "override the preset's hidden size" },
  intermediate_size: { type: "int", min: 1, help: "override the preset's MLP width" },
  init_from_pretrained: { type: "bool", default: false, help: "load --model_name, a local HF Llama folder" },
  // Dataset arguments
  dataset_name: { type: "str", default: "builtin:stories", help: "builtin:stories, a file or a hub id" },
  tokenizer_name: { type: "str", help: "bytes, a tokenizer.json folder, a hub id (default: the model's)" },
  num_workers: { type: "int", default: 1, min: 0, help: "threads gathering batches ahead" },
  num_proc: { type: "int", default: 1, min: 1, help: "threads tokenizing (the tokens do not change)" },
  // Training arguments
  seed: { type: "int", default: 42, min: 0 },
  learning_rate: { type: "float", default: 1e-3, min: 0 },
  ...optim.optimizer_args, // beyond the tutorial: --lr_scheduler, --warmup_steps, --min_lr, --weight_decay, --max_grad_norm
  seq_len: { type: "int", default: 128, min: 1 },
  micro_batch_size: { type: "int", default: 16, min: 1 },
  gradient_accumulation_steps: { type: "int", default: 1, min: 1 },
  max_tokens: { type: "int", default: 262144, min: 1 },
  // Distributed training arguments
  tp_size: { type: "int", default: 1, min: 1, help: "Tensor Parallel size" },
  dp_size: { type: "int", default: 1, min: 1, help: "Data Parallel size" },
  bucket_cap_mb: { type: "float", default: 25, above: 0, help: "size of a gradient bucket, in MiB" },
  zero_stage: { type: "str", default: "0", choices: ["0", "1", "2", "3"], help: "ZeRO over cp x dp" },
  pp_size: { type: "int", default: 1, min: 1, help: "Pipeline Parallel size" },
  pp_engine: { type: "str", default: "afab", choices: ["1f1b", "afab"] },
  cp_size: { type: "int", default: 1, min: 1, help: "Context Parallel size" },
  hostfile: { type: "path", help: "OpenMPI hostfile, to run on several machines" },
  collective_timeout: { type: "float", min: 0, help: "seconds a rank waits for a peer (default 300)" },
  // Logging arguments
  run_name: { type: "str", default: "default_run" },
  use_wandb: { type: "bool", default: false, help: "log to Weights & Biases (needs WANDB_API_KEY)" },
  runs_dir: { type: "path", default: "runs", writable: true, help: "metrics go to runs_dir/run_name" },
  ...checkpoint_args, // --save_dir, --save_frequency, --resume
  trace: { type: "bool", default: false, help: "every rank's timeline: runs_dir/run_name/trace.json" },
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

// Tensor parallelism splits the heads, KV heads, hidden size, ffn and the padded vocabulary: say which one
// --tp_size does not divide before launching anything
if (args.tp_size > 1) {
  const vocab_size = paddedVocabSize((await loadTokenizer(args.tokenizer_name, args.model_name)).vocabSize);
  checkTensorParallel({ ...model_config, vocab_size }, args.tp_size);
}

if (!args.init_from_pretrained) distribute_layers(args.num_hidden_layers, args.pp_size, 0); // a layer per stage
if (args.seq_len % args.cp_size !== 0)
  throw new UsageError(
    `--seq_len ${args.seq_len} is not divisible by --cp_size ${args.cp_size}: each cp rank takes seq_len / cp_size positions`,
  );
const zero_stage = Number(args.zero_stage);
// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({ ...args, worldSize: args.dp_size * args.pp_size * args.cp_size * args.tp_size }); // + hostfile, timeout
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);
process.env.TOKENIZERS_PARALLELISM = args.tokenizers_parallelism;

setup_process_group_manager(args.dp_size, args.pp_size, args.cp_size, args.tp_size);
const grid = pgm.process_group_manager;
const is_print_rank = grid.global_rank === 0;

const dataloader = await MicroBatchDataLoader.create({
  seq_len: args.seq_len,
  micro_batch_size: args.micro_batch_size,
  grad_acc_steps: args.gradient_accumulation_steps,
  dataset_name: args.dataset_name,
  tokenizer_name: args.tokenizer_name,
  model_name: args.model_name,
  max_tokens: args.max_tokens,
  num_workers: args.num_workers,
  num_proc: args.num_proc,
  dp_size: grid.dp_world_size,
  dp_rank: grid.dp_rank,
  cp_size: grid.cp_world_size,
  cp_rank: grid.cp_rank,
});
model_config.vocab_size = dataloader.vocab_size; // the tokenizer's, padded

let model: Llama | PipelineParallel = new Llama(model_config);
if (args.init_from_pretrained) loadPretrained(args.model_name, model);
// each rank keeps its shard of every weight matrix (of the pretrained weights too)
if (grid.tp_world_size > 1) model = apply_tensor_parallel(model);
if (grid.pp_world_size > 1) model = new PipelineParallel(model, model_config); // and its stage's layers
if (!args.init_from_pretrained) model.initWeights(args.seed);
model.train();
// with several replicas, gradient hooks average this rank's shards' gradients over the dp group
// cp: the cp ranks hold the same weights too; a cp rank's gradient is every slice's loss's share through its
// positions (the ring's backward brings back the later slices' dK, dV): their mean matches the mean loss
// ZeRO: the buckets (stage 3: layers) are reduce-scattered, each rank getting the average of its block only
const dp_model =
  grid.cp_dp_world_size === 1
    ? model
    : zero_stage > 0
      ? new DataParallelReduceScatter(model, grid.cp_dp_group, args.bucket_cap_mb, zero_stage)
      : new DataParallelBucket(model, grid.cp_dp_group, args.bucket_cap_mb);
// the whole model's, as in the single-process run: the shards' over tp, the stages' summed over pp
const num_params = sum_over_stages("all_reduce_num_params", numParametersTensorParallel(model));
const tensor_shapes = [args.micro_batch_size, dataloader.seq_len_per_rank, model_config.hidden_size]; // cp: a slice

const { learning_rate: lr, weight_decay: weightDecay } = args;
// ZeRO: AdamW over this rank's block of every bucket (with one replica: the plain AdamW)
const optimizer =
  dp_model instanceof DataParallelReduceScatter
    ? new ZeroRedundancyOptimizer(dp_model, { lr, weightDecay })
    : new optim.AdamW(model.parameters(), { lr, weightDecay });
// the training state this rank keeps between steps, the largest rank's (the last blocks are shorter)
const largest = new Float64Array(Object.values(stateBytes(model, dp_model, optimizer))); // params, grads, moments
grid.world_group.allreduce(largest, "max");
const tokens_per_step = dataloader.global_batch_size * args.seq_len;
const total_steps = Math.floor(args.max_tokens / tokens_per_step);
if (total_steps < 1)
  throw new UsageError(`--max_tokens ${args.max_tokens} is less than one step's ${tokens_per_step} tokens`);
const schedule = optim.lr_schedule(args, total_steps);

// Checkpoints: a shard per (tp, pp) position, which its first dp and cp replica writes (the replicas are equal)
const shard = {
  name: `tp${grid.tp_rank}_pp${grid.pp_rank}`,
  writer: grid.dp_rank === 0 && grid.cp_rank === 0,
};
const layout = [grid.dp_world_size, grid.pp_world_size, grid.cp_world_size, grid.tp_world_size];
const { global_batch_size } = dataloader;
const fingerprint = { model: model_config, layout, seq_len: args.seq_len, global_batch_size };
const checkpoint_manager = CheckpointManager.fromArgs(args, grid.world_group, shard, fingerprint);
let trained_token = 0;
let step = 0;
if (args.resume && checkpoint_manager) {
  // checkpoints hold the whole moments, as every layout's: ZeRO loads them into a plain AdamW, keeps its block
  const full = optimizer instanceof ZeroRedundancyOptimizer ? new optim.AdamW(model.parameters()) : optimizer;
  const load = () => checkpoint_manager.load_checkpoint(model, full);
  const { dir, state } =
    dp_model instanceof DataParallelReduceScatter ? dp_model.withFullWeights(load) : load();
  if (optimizer instanceof ZeroRedundancyOptimizer) optimizer.copyMoments(full, "scatter");
  ({ step, trained_tokens: trained_token } = state);
  dataloader.loadState(state.dataloader);
  const complete = trained_token >= args.max_tokens ? ": the run is already complete (--max_tokens)" : "";
  print(`resumed from ${dir} at step ${step}${complete}`, is_print_rank);
}

const peak_flops = measurePeakFlops();
const config = { ...args, layout: `${grid}`, num_params, peak_flops };
const resumeStep = args.resume ? step : undefined; // a resumed run's metrics go on after its checkpoint
const { runs_dir: dir, run_name: name, use_wandb } = args;
if (is_print_rank) await wandb.init({ dir, name, config, resumeStep, use_wandb });
print(
  `${grid} | model: ${to_readable_format(num_params)} parameters, vocab ${model_config.vocab_size} | tokenizer: ${dataloader.tokenizer.name} | tokens per step: ${to_readable_format(tokens_per_step)} | peak ${to_readable_format(peak_flops)}FLOP/s per rank`,
  is_print_rank,
);
const [p_bytes, g_bytes, m_bytes] = [...largest].map((b) => to_readable_format(b));
print(
  `ZeRO stage ${zero_stage} over ${grid.cp_dp_world_size} replicas | state per rank: params ${p_bytes}B, grads ${g_bytes}B, moments ${m_bytes}B (${[...largest].join(" ")}) of Ψ = ${num_params}`,
  is_print_rank,
);

const stop = installStopHandler(); // Ctrl-C: finish the step, save, stop
const guard = new optim.DivergenceGuard();
grid.world_group.barrier();
const track = `rank ${grid.global_rank} (dp ${grid.dp_rank}, pp ${grid.pp_rank}, cp ${grid.cp_rank}, tp ${grid.tp_rank})`;
if (args.trace) tracer.start(grid.world_group, track);

// Training loop
while (trained_token < args.max_tokens) {
  const step_start_time = performance.now();
  tracer.step = step + 1;
  optimizer.lr = schedule.lrAt(step);
  optimizer.zeroGrad(false); // in place: with dp, the gradients are views of the buckets

  const train_step_pipeline = args.pp_engine === "1f1b" ? train_step_pipeline_1f1b : train_step_pipeline_afab;
  const loss = all_reduce_loss_across_dp_cp_ranks(
    grid.pp_world_size > 1
      ? train_step_pipeline(dp_model as PipelineModel, dataloader, tensor_shapes)
      : train_step(dp_model as Llama | DataParallelLlama, dataloader),
  );

  // clipped to --max_grad_norm (0: not clipped, still logged); a diverging run stops before the step
  // the whole model's gradient norm: the shards' squares are summed over the tp ranks (ZeRO: and the dp blocks')
  const local_norm_sq =
    optimizer instanceof ZeroRedundancyOptimizer
      ? optimizer.gradNormSquared(shardedParameters(model), grid.tp_group)
      : gradNormTensorParallel(model) ** 2;
  const grad_norm_sq = sum_over_stages("all_reduce_grad_norm", local_norm_sq);
  const grad_norm = optim.clipGradNorm(
    optimizer.params, // ZeRO: this rank's block
    args.max_grad_norm || Infinity,
    Math.sqrt(grad_norm_sq),
  );
  guard.check(step + 1, loss, grad_norm);
  tracer.span("optimizer", "optimizer", () => optimizer.step());

  const step_duration = (performance.now() - step_start_time) / 1e3;
  trained_token += tokens_per_step;
  step += 1;

  const tokens_per_s = tokens_per_step / step_duration;
  const tokens_per_s_per_rank = tokens_per_s / grid.world_size;
  const mfu = get_mfu(tokens_per_s_per_rank, num_params, model_config, args.seq_len, peak_flops);
  const rss_bytes = process.memoryUsage.rss();
  print(
    `[rank ${grid.global_rank}] Step: ${step}, Loss: ${loss.toFixed(4)}, ` +
      `Global batch size (with seq_len): ${to_readable_format(tokens_per_step)}, ` +
      `Tokens/s: ${to_readable_format(tokens_per_s)}, Tokens/s/rank: ${to_readable_format(tokens_per_s_per_rank)}, ` +
      `Tokens: ${to_readable_format(trained_token)}/${to_readable_format(args.max_tokens)}, ` +
      `Memory (RSS): ${(rss_bytes / 1e9).toFixed(2)}GB, MFU: ${mfu.toFixed(2)}%`,
    is_print_rank,
  );
  const metrics = { step, loss, lr: optimizer.lr, grad_norm, step_s: step_duration, rss_bytes };
  const peak = new Float64Array([peak_activation_bytes]); // the largest stage's, for the metrics
  if (grid.pp_world_size > 1) grid.world_group.allreduce(peak, "max");
  if (grid.pp_world_size > 1) Object.assign(metrics, { peak_activation_bytes: peak[0]! });
  wandb.log({ ...metrics, trained_tokens: trained_token, tokens_per_s, tokens_per_s_per_rank, mfu });

  const stopping = await agreeToStop(stop, grid.world_group); // a Ctrl-C on any rank stops them all
  if (checkpoint_manager?.should_save(step, stopping || trained_token >= args.max_tokens)) {
    const state = { step, trained_tokens: trained_token, dataloader: dataloader.state(), seed: args.seed };
    const saved =
      optimizer instanceof ZeroRedundancyOptimizer
        ? optimizer.copyMoments(new optim.AdamW(model.parameters(), { lr, weightDecay }), "gather")
        : optimizer;
    const save = () => checkpoint_manager.save_checkpoint(model, saved, state);
    print(
      `saved checkpoint ${dp_model instanceof DataParallelReduceScatter ? dp_model.withFullWeights(save) : save()}`,
      is_print_rank,
    );
  }
  if (stopping) {
    print(`stopped at step ${step}${args.save_dir ? "" : " (no --save_dir: nothing saved)"}`, is_print_rank);
    break;
  }
}
const trace_file = `${args.runs_dir}/${args.run_name}/trace.json`;
if (args.trace) tracer.write(grid.world_group, trace_file);
if (args.trace) print(`trace (open it in https://ui.perfetto.dev): ${trace_file}`, is_print_rank);
await wandb.finish();
