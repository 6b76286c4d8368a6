// Step 7: pipeline parallelism. The decoder layers are split into --pp_size stages (pipeline_parallel.ts);
// the micro-batches of a step flow through them all-forward-all-backward, and the loss curve is the
// single-process one. Each stage can be split over --tp_size ranks and replicated over --dp_size (3D
// parallelism). --trace records a timeline of every rank (trace.ts) to see the pipeline's bubble.
//   pnpm --filter step7 train -- --pp_size 4 --num_hidden_layers 4 --gradient_accumulation_steps 8 --trace
//   pnpm --filter step7 train -- --dp_size 2 --tp_size 2 --pp_size 2 --num_attention_heads 8 --num_key_value_heads 4
import path from "node:path";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { measurePeakFlops, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig, loadTokenizer, paddedVocabSize } from "@picotron/transformers";
import { parseArgs } from "./arguments.ts";
import {
  latestCheckpoint,
  loadCheckpoint,
  loadPretrained,
  saveCheckpoint,
  type TrainingState,
} from "./checkpoint.ts";
import { DataParallelBucket } from "./data_parallel.ts";
import { MicroBatchDataLoader } from "./dataloader.ts";
import { Llama, lossFn } from "./model.ts";
import { checkPipelineParallel, PipelineParallel, train_step_pipeline_afab } from "./pipeline_parallel.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import {
  apply_tensor_parallel,
  checkTensorParallel,
  gradNormTensorParallel,
  numParametersTensorParallel,
} from "./tensor_parallel.ts";
import { tracer } from "./trace.ts";
import {
  averageLossAcrossDpRanks,
  getMfu,
  installStopHandler,
  MetricsLogger,
  print,
  to_readable_format,
} from "./utils.ts";

/** One optimizer step's forward/backward passes: grad_acc micro-batches, each loss scaled by 1/grad_acc. */
function trainStep(model: Llama | DataParallelBucket<Llama>, dataloader: MicroBatchDataLoader): number {
  let accLoss = 0;
  for (let i = 0; i < dataloader.grad_acc_steps; i++) {
    const batch = dataloader.next();
    // the earlier micro-batches only accumulate: the gradients are averaged once, in the last backward pass
    if (model instanceof DataParallelBucket) {
      model.require_backward_grad_sync = i === dataloader.grad_acc_steps - 1;
    }
    const outputs = model.forward(batch.input_ids); // [batch, seq, vocab]
    const loss = lossFn(outputs, batch.target_ids).div(dataloader.grad_acc_steps);
    loss.backward();
    accLoss += loss.item();
  }
  // the last buckets' all-reduces may still be in flight: clipping and the optimizer need the averages
  if (model instanceof DataParallelBucket) model.finishGradientSynchronization();
  return accLoss;
}

/** Sum of a number over the pipeline stages (a traced all-reduce): each stage holds its part of it. */
function sumOverStages(name: string, x: number): number {
  const buf = new Float64Array([x]);
  tracer.span(name, "all-reduce", () => pgm.process_group_manager.pp_group.allreduce(buf, "sum"));
  return buf[0]!;
}

const args = parseArgs(process.argv);
const cwd = process.env.INIT_CWD ?? process.cwd(); // pnpm runs scripts in the package: paths are the user's
const saveDir = args.save_dir ? path.resolve(cwd, args.save_dir) : null;

// Model config: preset, local directory or hub; the vocabulary comes from the tokenizer (padded)
const modelConfig = await loadConfig(
  args.init_from_pretrained ? path.resolve(cwd, args.model_name) : args.model_name,
);
if (!args.init_from_pretrained) {
  modelConfig.num_hidden_layers = args.num_hidden_layers;
  modelConfig.num_attention_heads = args.num_attention_heads;
  modelConfig.num_key_value_heads = args.num_key_value_heads;
  if (args.hidden_size) modelConfig.hidden_size = args.hidden_size;
  if (args.intermediate_size) modelConfig.intermediate_size = args.intermediate_size;
}
modelConfig.max_position_embeddings = Math.max(
  args.seq_len,
  args.init_from_pretrained ? modelConfig.max_position_embeddings : 0,
);

// Tensor parallelism splits the heads, KV heads, hidden size, ffn and the padded vocabulary across the
// ranks: say which one --tp_size does not divide before launching anything.
if (args.tp_size > 1) {
  const tokenizer = await loadTokenizer(args.tokenizer_name, args.model_name, cwd);
  checkTensorParallel({ ...modelConfig, vocab_size: paddedVocabSize(tokenizer.vocabSize) }, args.tp_size);
}
// Pipeline parallelism gives every stage at least one decoder layer.
checkPipelineParallel(modelConfig.num_hidden_layers, args.pp_size);

// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({
  worldSize: args.dp_size * args.pp_size * args.tp_size,
  hostfile: args.hostfile && path.resolve(cwd, args.hostfile),
});
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);

setup_process_group_manager(args.dp_size, args.pp_size, args.tp_size);
const grid = pgm.process_group_manager;
const isPrintRank = grid.global_rank === 0;

const dataloader = await MicroBatchDataLoader.create({
  seq_len: args.seq_len,
  micro_batch_size: args.micro_batch_size,
  grad_acc_steps: args.gradient_accumulation_steps,
  dataset_name: args.dataset_name,
  tokenizer_name: args.tokenizer_name,
  model_name: args.model_name,
  max_tokens: args.max_tokens,
  dp_size: grid.dp_world_size,
  dp_rank: grid.dp_rank,
  cwd,
});
modelConfig.vocab_size = dataloader.vocab_size;

// As in the tutorial: the whole model; each rank keeps its shard of every weight matrix (of the pretrained
// weights too); with pp > 1, PipelineParallel keeps this rank's stage of it: its decoder layers, plus the
// embedding on the first stage and the final norm and projection on the last.
let model: Llama | PipelineParallel = new Llama(modelConfig);
if (args.init_from_pretrained) loadPretrained(path.resolve(cwd, args.model_name), model);
if (grid.tp_world_size > 1) model = apply_tensor_parallel(model);
if (grid.pp_world_size > 1) model = new PipelineParallel(model, modelConfig);
// the init is keyed by parameter name, and the stage keeps the whole model's names: drawing only the
// stage's weights gives exactly the 1-rank model's
if (!args.init_from_pretrained) model.initWeights(args.seed);
model.train();
// the whole model's count, as in the single-process run: the shards' over tp, the stages' summed over pp
const numParams = sumOverStages("all_reduce_num_params", numParametersTensorParallel(model));
// what travels between the stages: one micro-batch's activation
const tensor_shapes = [args.micro_batch_size, args.seq_len, modelConfig.hidden_size];
// One optimizer step's forwards and backwards: the pipeline schedule on a stage, else the plain loop. With
// several replicas, the wrapper's gradient hooks average the gradients (of this rank's shards) over the dp
// group, the ranks that hold the same shards of the same stage, bucket by bucket.
let runStep: () => { loss: number; peak_activation_bytes?: number };
if (model instanceof PipelineParallel) {
  const stage =
    grid.dp_world_size > 1 ? new DataParallelBucket(model, grid.dp_group, args.bucket_cap_mb) : model;
  runStep = () => train_step_pipeline_afab(stage, dataloader, tensor_shapes);
} else {
  const replica =
    grid.dp_world_size > 1 ? new DataParallelBucket(model, grid.dp_group, args.bucket_cap_mb) : model;
  runStep = () => ({ loss: trainStep(replica, dataloader) });
}

const optimizer = new optim.AdamW(model.parameters(), {
  lr: args.learning_rate,
  weightDecay: args.weight_decay,
});
const tokensPerStep = dataloader.global_batch_size * args.seq_len;
const totalSteps = Math.floor(args.max_tokens / tokensPerStep);
const schedule =
  args.lr_scheduler === "cosine"
    ? optim.warmupCosineLR(
        args.learning_rate,
        Math.min(args.warmup_steps, totalSteps),
        totalSteps,
        args.min_lr,
      )
    : optim.constantLR(args.learning_rate);

// Resume: weights, optimizer moments, step, tokens and the dataloader's position
const fingerprint = {
  model: modelConfig,
  layout: [grid.dp_world_size, grid.pp_world_size, grid.tp_world_size],
  seq_len: args.seq_len,
  global_batch_size: dataloader.global_batch_size,
};
let step = 0;
let trainedTokens = 0;
if (args.resume && saveDir) {
  const dir = latestCheckpoint(saveDir);
  if (!dir) throw new Error(`--resume: no checkpoint in ${saveDir}`);
  const state = loadCheckpoint(dir, grid, model, optimizer, fingerprint);
  ({ step, trained_tokens: trainedTokens } = state);
  dataloader.loadState(state.dataloader);
  print(`resumed from ${dir} at step ${step}`, isPrintRank);
}
const checkpointState = (): TrainingState => ({
  step,
  trained_tokens: trainedTokens,
  dataloader: dataloader.state(),
  seed: args.seed,
  fingerprint,
});

const peakFlops = measurePeakFlops();
const metrics = isPrintRank
  ? new MetricsLogger(
      path.resolve(cwd, args.runs_dir),
      args.run_name,
      { ...args, layout: grid.toString(), num_params: numParams, peak_flops: peakFlops },
      args.resume,
    )
  : null;
print(
  `${grid} | model: ${to_readable_format(numParams)} parameters, vocab ${modelConfig.vocab_size} | tokenizer: ${dataloader.tokenizer.name} | ` +
    `tokens per step: ${to_readable_format(tokensPerStep)} | peak ${to_readable_format(peakFlops)}FLOP/s per rank`,
  isPrintRank,
);

const stop = installStopHandler();
grid.world_group.barrier();
if (args.trace) tracer.start(grid);

// Training loop
while (trainedTokens < args.max_tokens) {
  const stepStart = performance.now();
  tracer.step = step + 1;
  optimizer.lr = schedule.lrAt(step);
  optimizer.zeroGrad(false); // in place: with dp, the gradients are views of the buckets

  const result = runStep();
  // each rank's loss is the mean over its share of the batch: their average is the whole batch's loss;
  // it is computed on the last stage: the other stages add 0, so every rank (the logging rank 0 too) gets it
  const loss = sumOverStages("all_reduce_loss", averageLossAcrossDpRanks(result.loss, grid.dp_group));
  // the largest peak of live activations over the stages, for the metrics
  let peakActivationBytes: number | null = null;
  if (result.peak_activation_bytes !== undefined) {
    const peak = new Float64Array([result.peak_activation_bytes]);
    tracer.span("all_reduce_peak_memory", "all-reduce", () => grid.world_group.allreduce(peak, "max"));
    peakActivationBytes = peak[0]!;
  }

  // the norm of the whole model's gradient: the shards' squares are summed over the tp ranks, then the
  // stages' over the pp ranks
  const gradNorm =
    args.max_grad_norm > 0
      ? optim.clipGradNorm(
          model.parameters(),
          args.max_grad_norm,
          Math.sqrt(sumOverStages("all_reduce_grad_norm", gradNormTensorParallel(model) ** 2)),
        )
      : NaN;
  if (!Number.isFinite(loss)) {
    throw new Error(
      `loss is ${loss} at step ${step + 1}: stopping; the last good checkpoint is kept (lower --learning_rate?)`,
    );
  }
  tracer.span("optimizer", "optimizer", () => optimizer.step());

  const stepDuration = (performance.now() - stepStart) / 1e3;
  trainedTokens += tokensPerStep;
  step += 1;

  const tokensPerSecond = tokensPerStep / stepDuration;
  const tokensPerSecondPerRank = tokensPerSecond / grid.world_size;
  const mfu = getMfu(tokensPerSecondPerRank, numParams, modelConfig, args.seq_len, peakFlops);
  const rss = process.memoryUsage.rss();
  print(
    `[rank ${grid.global_rank}] Step: ${step}, Loss: ${loss.toFixed(4)}, ` +
      `Global batch size (with seq_len): ${to_readable_format(tokensPerStep)}, ` +
      `Tokens/s: ${to_readable_format(tokensPerSecond)}, Tokens/s/rank: ${to_readable_format(tokensPerSecondPerRank)}, ` +
      `Tokens: ${to_readable_format(trainedTokens)}/${to_readable_format(args.max_tokens)}, ` +
      `Memory (RSS): ${(rss / 1e9).toFixed(2)}GB, MFU: ${mfu.toFixed(2)}%`,
    isPrintRank,
  );
  metrics?.log({
    step,
    loss,
    lr: optimizer.lr,
    trained_tokens: trainedTokens,
    tokens_per_s: tokensPerSecond,
    tokens_per_s_per_rank: tokensPerSecondPerRank,
    mfu,
    rss_bytes: rss,
    grad_norm: gradNorm,
    step_s: stepDuration,
    ...(peakActivationBytes === null ? {} : { peak_activation_bytes: peakActivationBytes }),
  });

  // let signal handlers run (the step itself is synchronous), then agree across ranks on stopping
  await new Promise((resolve) => setImmediate(resolve));
  const stopFlag = new Int32Array([stop.requested ? 1 : 0]);
  grid.world_group.allreduce(stopFlag, "max");
  const saveNow =
    saveDir !== null &&
    ((args.save_frequency > 0 && step % args.save_frequency === 0) ||
      stopFlag[0] === 1 ||
      trainedTokens >= args.max_tokens);
  if (saveNow) {
    const dir = saveCheckpoint(saveDir, grid, model, optimizer, checkpointState());
    print(`saved checkpoint ${dir}`, isPrintRank);
  }
  if (stopFlag[0] === 1) {
    print(`stopped at step ${step}${saveDir ? "" : " (no --save_dir: nothing saved)"}`, isPrintRank);
    break;
  }
}
if (args.trace) {
  const file = path.join(path.resolve(cwd, args.runs_dir), args.run_name, "trace.json");
  tracer.write(grid, file);
  print(`trace (open it in https://ui.perfetto.dev): ${file}`, isPrintRank);
}
