// Test worker (one process per dp rank, under mpirun): trains a tiny Llama for two optimizer steps of two
// micro-batches each with DataParallelNaive, next to a 1-rank reference that sees each whole global batch.
// Prints one JSON line per rank: the largest gradient and weight differences from the reference, whether
// the gradients were still local after the unsynchronized micro-batch, and a hash of the weights.
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { optim, Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { DataParallelNaive } from "./data_parallel.ts";
import { Llama, lossFn } from "./model.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";

const dp = Number(process.argv[2]);
await ensureLaunched({ worldSize: dp });
const grid = setup_process_group_manager(dp, 1, 1);

const CONFIG: LlamaConfig = {
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 16,
};
const SEQ = 16;
const PER_RANK = 2; // sequences per rank and micro-batch
const GRAD_ACC = 2;
const STEPS = 2;

/** The given sequences of a fixed pseudo-random corpus: input tokens and next tokens. */
function sequences(ids: number[]): { input: Tensor; target: Tensor } {
  const input = new Int32Array(ids.length * SEQ);
  const target = new Int32Array(ids.length * SEQ);
  ids.forEach((id, row) => {
    for (let t = 0; t <= SEQ; t++) {
      const token = (Math.imul(id * 131 + t, 2654435761) >>> 7) % CONFIG.vocab_size;
      if (t < SEQ) input[row * SEQ + t] = token;
      if (t > 0) target[row * SEQ + t - 1] = token;
    }
  });
  return { input: new Tensor(input, [ids.length, SEQ]), target: new Tensor(target, [ids.length, SEQ]) };
}

function backward(model: { forward(x: Tensor): Tensor }, ids: number[]): void {
  const { input, target } = sequences(ids);
  lossFn(model.forward(input), target).div(GRAD_ACC).backward();
}

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const grads = (m: Llama) => m.parameters().map((p) => p.grad!.values() as Float32Array);

/** FNV-1a over the bytes of every weight: equal hashes on all ranks mean bitwise-equal replicas. */
function weightHash(model: Llama): number {
  let h = 0x811c9dc5;
  for (const p of model.parameters()) {
    const bytes = new Uint8Array((p.values() as Float32Array).slice().buffer);
    for (const b of bytes) h = Math.imul(h ^ b, 16777619);
  }
  return h >>> 0;
}

/** True when every rank holds the same value of x. */
function sameEverywhere(x: number): boolean {
  const all = new Float64Array(grid.dp_world_size);
  grid.dp_group.allgather(new Float64Array([x]), all);
  return all.every((v) => v === all[0]);
}

const reference = new Llama(CONFIG).initWeights(7);
const model = new Llama(CONFIG).initWeights(7);
const dpModel = new DataParallelNaive(model, grid.dp_group);
const refOpt = new optim.AdamW(reference.parameters(), { lr: 1e-2 });
const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });

let gradDiff = 0;
let gradScale = 0;
let localAfterUnsynced = true;
for (let step = 0; step < STEPS; step++) {
  refOpt.zeroGrad();
  opt.zeroGrad();
  for (let micro = 0; micro < GRAD_ACC; micro++) {
    // global micro-batch: sequences [first, first + dp x PER_RANK); rank r reads r, r + dp, ... (the dataloader's split)
    const first = (step * GRAD_ACC + micro) * dp * PER_RANK;
    const global = Array.from({ length: dp * PER_RANK }, (_, i) => first + i);
    backward(reference, global);
    dpModel.require_backward_grad_sync = micro === GRAD_ACC - 1;
    backward(
      dpModel,
      global.filter((_, i) => i % dp === grid.dp_rank),
    );
    // without synchronization, each rank has its own gradient (of final_proj, which every token touches)
    if (micro < GRAD_ACC - 1) localAfterUnsynced &&= !sameEverywhere(grads(model).at(-1)![0]!);
  }
  const refGrads = grads(reference);
  grads(model).forEach((g, i) => {
    gradDiff = Math.max(gradDiff, maxDiff(g, refGrads[i]!));
    gradScale = Math.max(gradScale, maxAbs(refGrads[i]!));
  });
  optim.clipGradNorm(reference.parameters(), 1);
  optim.clipGradNorm(model.parameters(), 1);
  refOpt.step();
  opt.step();
}

const weightDiff = model
  .parameters()
  .reduce(
    (m, p, i) =>
      Math.max(m, maxDiff(p.values() as Float32Array, reference.parameters()[i]!.values() as Float32Array)),
    0,
  );
console.log(
  JSON.stringify({
    rank: grid.dp_rank,
    dp: grid.dp_world_size,
    gradDiff,
    gradScale,
    weightDiff,
    localAfterUnsynced,
    hash: weightHash(model),
  }),
);
