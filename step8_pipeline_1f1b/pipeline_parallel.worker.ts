// Test worker for pipeline_parallel.test.ts: `PP RUN...` with each RUN `ENGINE:LAYERS:GRAD_ACC`. For each
// run, every rank trains its pipeline stage for two steps with that schedule and, beside it, the whole 1-rank
// model on the same micro-batches, and prints one JSON line comparing them: weights after init, gradients,
// loss (reduced over the stages as the train loop does) and the stage's peak activation bytes.
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { optim, Tensor } from "@picotron/tensor";
import { PRESETS } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import {
  peak_activation_bytes,
  PipelineParallel,
  train_step_pipeline_1f1b,
  train_step_pipeline_afab,
  type MicroBatches,
} from "./pipeline_parallel.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";

const ENGINES = { afab: train_step_pipeline_afab, "1f1b": train_step_pipeline_1f1b };
const [pp, ...runs] = process.argv.slice(2) as [string, ...string[]];
await ensureLaunched({ worldSize: Number(pp) });
const grid = setup_process_group_manager(1, Number(pp), 1);

const MBS = 2;
const SEQ = 16;
const SEED = 3;

/** Deterministic token ids for (step, micro-batch), the same on every rank. */
function batch(step: number, microbatch: number): ReturnType<MicroBatches["next"]> {
  const ids = (salt: number) =>
    new Tensor(
      Int32Array.from({ length: MBS * SEQ }, (_, i) => (i * 7 + step * 13 + microbatch * 29 + salt) % 64),
      [MBS, SEQ],
    );
  return { input_ids: ids(0), target_ids: ids(5), position_ids: ids(0) };
}
function loader(step: number, gradAcc: number): MicroBatches {
  let next = 0;
  return { grad_acc_steps: gradAcc, next: () => batch(step, next++) };
}

function compare(engine: keyof typeof ENGINES, layers: number, gradAcc: number) {
  const config = {
    ...PRESETS["HuggingFaceTB/SmolLM-135M"]!,
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: layers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: SEQ,
  };
  const stage = new PipelineParallel(new Llama(config), config).initWeights(SEED);
  const reference = new Llama(config).initWeights(SEED);
  const ref = new Map(reference.namedParameters());
  const weightsEqual = stage
    .namedParameters()
    .every(([n, p]) => p.values().every((v, i) => v === ref.get(n)!.values()[i]));

  const optimizer = new optim.AdamW(stage.parameters(), { lr: 1e-2 });
  const refOptimizer = new optim.AdamW(reference.parameters(), { lr: 1e-2 });
  const steps = [];
  for (let step = 0; step < 2; step++) {
    optimizer.zeroGrad();
    refOptimizer.zeroGrad();
    const result = ENGINES[engine](stage, loader(step, gradAcc), [MBS, SEQ, config.hidden_size]);
    // the loss lives on the last stage: the others contribute 0 to the sum
    const loss = new Float64Array([result]);
    grid.pp_group.allreduce(loss, "sum");

    let refLoss = 0;
    const data = loader(step, gradAcc);
    for (let i = 0; i < gradAcc; i++) {
      const b = data.next();
      const l = lossFn(reference.forward(b.input_ids), b.target_ids).div(gradAcc);
      l.backward();
      refLoss += l.item();
    }
    let maxGradDiff = 0;
    let maxGrad = 0;
    for (const [n, p] of stage.namedParameters()) {
      const want = ref.get(n)!.grad!.values();
      const have = p.grad!.values();
      for (let i = 0; i < want.length; i++) {
        maxGradDiff = Math.max(maxGradDiff, Math.abs(have[i]! - want[i]!));
        maxGrad = Math.max(maxGrad, Math.abs(want[i]!));
      }
    }
    steps.push({ loss: loss[0], refLoss, maxGradDiff, maxGrad, peak: peak_activation_bytes });
    optimizer.step();
    refOptimizer.step();
  }
  return {
    layers: stage.layer_distribution,
    names: stage.namedParameters().map(([n]) => n),
    refNames: [...ref.keys()],
    weightsEqual,
    steps,
  };
}

for (const run of runs) {
  const [engine, layers, gradAcc] = run.split(":") as [keyof typeof ENGINES, string, string];
  if (!(engine in ENGINES)) throw new Error(`unknown engine ${engine}`);
  console.log(
    JSON.stringify({ run, rank: grid.global_rank, ...compare(engine, Number(layers), Number(gradAcc)) }),
  );
}
