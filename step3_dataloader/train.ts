// Step 3: real data. The MicroBatchDataLoader feeds text from a dataset through a tokenizer, and the loop
// grows into the one every later step copies: gradient accumulation, LR warmup + cosine, gradient clipping,
// the tutorial's log line (plus MFU), metrics for the dashboard, and checkpoints that survive a crash.
//   pnpm --filter step3 train                 # a small model on the built-in stories, a few minutes on 2 cores
//   pnpm --filter step3 train -- --dataset_name ../shared/data/tinyshakespeare.txt --max_tokens 1000000
import path from "node:path";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { measurePeakFlops, optim, setNumThreads } from "@picotron/tensor";
import { loadConfig } from "@picotron/transformers";
import { parseArgs } from "./arguments.ts";
import {
  latestCheckpoint,
  loadCheckpoint,
  loadPretrained,
  saveCheckpoint,
  type TrainingState,
} from "./checkpoint.ts";
import { MicroBatchDataLoader } from "./dataloader.ts";
import { Llama, lossFn } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import { getMfu, installStopHandler, MetricsLogger, print, to_readable_format } from "./utils.ts";

/** One optimizer step's forward/backward passes: grad_acc micro-batches, each loss scaled by 1/grad_acc. */
function trainStep(model: Llama, dataloader: MicroBatchDataLoader): number {
  let accLoss = 0;
  for (let i = 0; i < dataloader.grad_acc_steps; i++) {
    const batch = dataloader.next();
    const outputs = model.forward(batch.input_ids); // [batch, seq, vocab]
    const loss = lossFn(outputs, batch.target_ids).div(dataloader.grad_acc_steps);
    loss.backward();
    accLoss += loss.item();
  }
  return accLoss;
}

const args = parseArgs(process.argv);
const cwd = process.env.INIT_CWD ?? process.cwd(); // pnpm runs scripts in the package: paths are the user's
const saveDir = args.save_dir ? path.resolve(cwd, args.save_dir) : null;

// Our torchrun: with more than one rank, re-run this script under mpirun (the parent waits there).
await ensureLaunched({
  worldSize: args.dp_size * args.pp_size * args.tp_size,
  hostfile: args.hostfile && path.resolve(cwd, args.hostfile),
});
if (args.omp_num_threads) setNumThreads(args.omp_num_threads);

setup_process_group_manager(args.dp_size, args.pp_size, args.tp_size);
const grid = pgm.process_group_manager;
const isPrintRank = grid.global_rank === 0;

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

const dataloader = await MicroBatchDataLoader.create({
  seq_len: args.seq_len,
  micro_batch_size: args.micro_batch_size,
  grad_acc_steps: args.gradient_accumulation_steps,
  dataset_name: args.dataset_name,
  tokenizer_name: args.tokenizer_name,
  model_name: args.model_name,
  max_tokens: args.max_tokens,
  cwd,
});
modelConfig.vocab_size = dataloader.vocab_size;

const model = new Llama(modelConfig);
if (args.init_from_pretrained) loadPretrained(path.resolve(cwd, args.model_name), model);
else model.initWeights(args.seed);
model.train();
const numParams = model.numParameters();

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

// Training loop
while (trainedTokens < args.max_tokens) {
  const stepStart = performance.now();
  optimizer.lr = schedule.lrAt(step);
  optimizer.zeroGrad();

  const loss = trainStep(model, dataloader);

  const gradNorm = args.max_grad_norm > 0 ? optim.clipGradNorm(model.parameters(), args.max_grad_norm) : NaN;
  if (!Number.isFinite(loss)) {
    throw new Error(
      `loss is ${loss} at step ${step + 1}: stopping; the last good checkpoint is kept (lower --learning_rate?)`,
    );
  }
  optimizer.step();

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
