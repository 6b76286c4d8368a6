// Test worker for tensor_parallel.test.ts, run as `node --import tsx tensor_parallel.worker.ts TP` (the
// launcher starts mpirun with TP ranks). Every rank builds each parallel layer and the unsharded one it
// replaces from the same seed, runs both forward and backward on the same inputs, and prints one JSON
// line: the largest differences (outputs, input and weight gradients, weights), the reference values'
// magnitudes, its parameter counts and the errors that misconfigured layers throw.
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { fillRandom, nn, optim, Tensor } from "@picotron/tensor";
import { PRESETS, type LlamaConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import {
  apply_tensor_parallel,
  ColumnParallelLinear,
  gradNormTensorParallel,
  numParametersTensorParallel,
  RowParallelLinear,
  VocabParallelEmbedding,
} from "./tensor_parallel.ts";

const tp = Number(process.argv[2]);
await ensureLaunched({ worldSize: tp });
const grid = setup_process_group_manager(1, 1, tp);
const rank = grid.tp_rank;
const SEED = 7;
const [B, S, IN, OUT, VOCAB] = [2, 3, 16, 24, 32];

/** The same N(0, 1) values on every rank. */
function randn(shape: number[], key: string, requiresGrad = false): Tensor {
  const t = new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  fillRandom(t.storage as Float32Array, SEED, key, { kind: "normal", mean: 0, std: 1 });
  return requiresGrad ? t.requiresGrad_() : t;
}
function randint(shape: number[], high: number, key: string): Tensor {
  const u = randn(shape, key).values();
  return new Tensor(
    Int32Array.from(u, (v) => Math.abs(Math.floor(v * 1e4)) % high),
    shape,
  );
}

/** Columns [rank * n/tp, (rank + 1) * n/tp) of x [..., n], as a new contiguous tensor. */
function myColumns(x: Tensor): Tensor {
  const n = x.shape[x.ndim - 1]!;
  const w = n / tp;
  return x
    .narrow(-1, rank * w, w)
    .contiguous()
    .detach();
}
/** The full [tp * rows, cols] matrix from every rank's rows. */
function gatherRows(x: Tensor): Float32Array {
  const out = new Float32Array(tp * x.numel);
  grid.tp_group.allgather(x.values() as Float32Array, out);
  return out;
}
/** The full [rows, tp * cols] matrix from every rank's columns. */
function gatherColumns(x: Tensor): Float32Array {
  const [rows, cols] = x.shape as [number, number];
  const all = gatherRows(x); // [tp, rows, cols]
  const out = new Float32Array(all.length);
  for (let r = 0; r < tp; r++)
    for (let i = 0; i < rows; i++)
      out.set(all.subarray((r * rows + i) * cols, (r * rows + i + 1) * cols), (i * tp + r) * cols);
  return out;
}

const diffs: Record<string, number> = {};
const scales: Record<string, number> = {};
/** Records max |a - b| and max |b| (the reference's magnitude) under a name. */
function compare(name: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`${name}: ${a.length} values against ${b.length}`);
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  diffs[name] = d;
  scales[name] = s;
}
const vals = (t: Tensor | null) => {
  if (!t) throw new Error("missing gradient");
  return t.values();
};

// ColumnParallelLinear, without and with gathered output
for (const gather of [false, true]) {
  const tag = gather ? "column_gather" : "column";
  const ref = new nn.Linear(IN, OUT).initWeights(SEED);
  const par = new ColumnParallelLinear(IN, OUT, gather).initWeights(SEED);
  const xRef = randn([B, S, IN], "x", true);
  const x = randn([B, S, IN], "x", true);
  const dy = randn([B, S, OUT], "dy");
  const yRef = ref.forward(xRef);
  yRef.backward(dy);
  const y = par.forward(x);
  y.backward(gather ? dy : myColumns(dy));
  compare(`${tag}.output`, y.values(), (gather ? yRef : myColumns(yRef)).values());
  compare(`${tag}.input_grad`, vals(x.grad), vals(xRef.grad));
  compare(`${tag}.weight`, gatherRows(par.weight), ref.weight.values());
  compare(`${tag}.weight_grad`, gatherRows(par.weight.grad!), vals(ref.weight.grad));
}

// RowParallelLinear: its input is this rank's slice of the features
{
  const ref = new nn.Linear(IN, OUT).initWeights(SEED);
  const par = new RowParallelLinear(IN, OUT).initWeights(SEED);
  const xRef = randn([B, S, IN], "x", true);
  const x = myColumns(xRef).requiresGrad_();
  const dy = randn([B, S, OUT], "dy");
  const yRef = ref.forward(xRef);
  yRef.backward(dy);
  const y = par.forward(x);
  y.backward(dy);
  compare("row.output", y.values(), yRef.values());
  compare("row.input_grad", vals(x.grad), myColumns(xRef.grad!).values());
  compare("row.weight", gatherColumns(par.weight), ref.weight.values());
  compare("row.weight_grad", gatherColumns(par.weight.grad!), vals(ref.weight.grad));
}

// VocabParallelEmbedding: ids from every rank's slice, with repeats
{
  const ref = new nn.Embedding(VOCAB, IN).initWeights(SEED);
  const par = new VocabParallelEmbedding(VOCAB, IN).initWeights(SEED);
  const ids = randint([B, 4 * S], VOCAB, "ids");
  const dy = randn([B, 4 * S, IN], "dy_emb");
  const yRef = ref.forward(ids);
  yRef.backward(dy);
  const y = par.forward(ids);
  y.backward(dy);
  compare("embedding.output", y.values(), yRef.values());
  compare("embedding.weight", gatherRows(par.weight), ref.weight.values());
  compare("embedding.weight_grad", gatherRows(par.weight.grad!), vals(ref.weight.grad));
}

// A whole tiny Llama after apply_tensor_parallel against the single-process one
const config: LlamaConfig = {
  ...PRESETS["HuggingFaceTB/SmolLM-135M"]!,
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 16,
};
const ref = new Llama(config).initWeights(SEED);
const model = apply_tensor_parallel(new Llama(config)).initWeights(SEED);
// applied to a model that already has its weights (loaded, say), each rank keeps its slice of them
const kept = new Map(apply_tensor_parallel(new Llama(config).initWeights(SEED)).namedParameters());
for (const [name, p] of model.namedParameters())
  compare(`llama.kept.${name}`, kept.get(name)!.values(), p.values());
const ids = randint([B, 8], config.vocab_size, "llama_ids");
const targets = randint([B, 8], config.vocab_size, "llama_targets");
const logitsRef = ref.forward(ids);
const lossRef = lossFn(logitsRef, targets);
lossRef.backward();
const logits = model.forward(ids);
const loss = lossFn(logits, targets);
loss.backward();
compare("llama.logits", logits.values(), logitsRef.values());
compare("llama.loss", [loss.item()], [lossRef.item()]);
compare(
  "llama.grad_norm",
  [gradNormTensorParallel(model)],
  [Math.sqrt(optim.gradSquaredSum(ref.parameters()))],
);

// Every parameter (and its gradient) scattered to its master positions through masterIndex and summed
// over the ranks must rebuild the reference's, each master element covered by exactly one rank.
const refParams = new Map(ref.namedParameters());
let maxCoverage = 0;
let minCoverage = Infinity;
for (const [name, p] of model.namedParameters()) {
  const master = refParams.get(name)!;
  const sharded = p.numel !== master.numel;
  const assemble = (local: Tensor) => {
    if (!sharded) return local.values();
    const out = new Float32Array(master.numel);
    const v = local.values();
    for (let j = 0; j < v.length; j++) out[p.masterIndex(j)] = v[j]!;
    grid.tp_group.allreduce(out, "sum");
    return out;
  };
  if (sharded) {
    const cover = new Float32Array(master.numel);
    for (let j = 0; j < p.numel; j++) cover[p.masterIndex(j)]! += 1;
    grid.tp_group.allreduce(cover, "sum");
    for (const c of cover) [minCoverage, maxCoverage] = [Math.min(minCoverage, c), Math.max(maxCoverage, c)];
  }
  compare(`llama.weight.${name}`, assemble(p), master.values());
  compare(`llama.grad.${name}`, assemble(p.grad!), vals(master.grad));
}

/** The message a constructor throws, or null. */
function errorOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
const badKv = new Llama({ ...config, num_key_value_heads: 1 }); // 8 heads share 1 KV head
const errors = {
  column: errorOf(() => new ColumnParallelLinear(IN, 2 * tp + 1)),
  row: errorOf(() => new RowParallelLinear(2 * tp + 1, OUT)),
  embedding: errorOf(() => new VocabParallelEmbedding(2 * tp + 1, IN)),
  apply: errorOf(() => apply_tensor_parallel(badKv)),
  // nothing was swapped before the check failed
  applyLeftModel: badKv.decoder_layers[0]!.attention.q_proj instanceof nn.Linear,
};

console.log(
  JSON.stringify({
    rank,
    tp,
    config,
    diffs,
    scales,
    coverage: [minCoverage, maxCoverage],
    numParams: model.numParameters(),
    numParamsTotal: numParametersTensorParallel(model),
    refNumParams: ref.numParameters(),
    shapes: Object.fromEntries(model.namedParameters().map(([n, p]) => [n, p.shape])),
    errors,
  }),
);
