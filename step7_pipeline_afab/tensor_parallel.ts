// Tensor parallelism (the tutorial's tensor_parallel.py, Megatron-LM's scheme): every weight matrix is cut
// across the tp ranks, so each rank stores and multiplies 1/tp of it.
//
//   ColumnParallelLinear  W [out, in] cut by rows (output features):  Y_i = X W_i^T     -> [..., out/tp]
//   RowParallelLinear     W [out, in] cut by columns (input features): Y = sum_i X_i W_i^T -> [..., out]
//
// A column layer feeding a row layer needs no communication in between (attention heads and the MLP's
// hidden units are independent): forward, a block costs one all-reduce (Reduce, after the row layer);
// backward, each column layer's Copy all-reduces its input's gradient (the sum of every rank's part), as
// the tutorial does: q, k, v share one input and gate, up another, so one Copy per input would do.
// The model file stays the tutorial's: apply_tensor_parallel(model) swaps its layers for these.
import { UsageError } from "@picotron/argparse";
import { defineFunction, F, nn, optim, Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import type { Llama } from "./model.ts";
import * as pgm from "./process_group_manager.ts";

// ---- TP communications: differentiable collectives over the tp group ----

/** Sum of x over the tp ranks, into a new buffer (x may be a gradient other graph nodes still read). */
function allReduce(x: Tensor): Tensor {
  const group = pgm.process_group_manager.tp_group;
  if (group.size === 1) return x;
  const out = new Float32Array(x.numel);
  group.allreduceInto(x.values() as Float32Array, out, "sum");
  return new Tensor(out, x.shape);
}

/** Every rank's x [..., n] side by side along the last dimension: [..., tp * n], rank r in columns r*n.. */
function gatherLastDim(x: Tensor): Tensor {
  const group = pgm.process_group_manager.tp_group;
  const tp = group.size;
  if (tp === 1) return x;
  const n = x.shape[x.ndim - 1]!;
  const rows = x.numel / n;
  const all = new Float32Array(tp * x.numel); // [tp, rows, n]
  group.allgather(x.values() as Float32Array, all);
  const out = new Float32Array(all.length); // [rows, tp, n]
  for (let r = 0; r < tp; r++) {
    for (let i = 0; i < rows; i++)
      out.set(all.subarray((r * rows + i) * n, (r * rows + i + 1) * n), (i * tp + r) * n);
  }
  return new Tensor(out, [...x.shape.slice(0, -1), tp * n]);
}

/** This rank's block of the last dimension: [..., tp * n] -> [..., n] (the inverse of gatherLastDim). */
function splitLastDim(x: Tensor): Tensor {
  const { tp_rank: rank, tp_world_size: tp } = pgm.process_group_manager;
  if (tp === 1) return x;
  const n = x.shape[x.ndim - 1]! / tp;
  const rows = x.numel / (tp * n);
  const src = x.values() as Float32Array;
  const out = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) out.set(src.subarray((i * tp + rank) * n, (i * tp + rank + 1) * n), i * n);
  return new Tensor(out, [...x.shape.slice(0, -1), n]);
}

/** Identity forward, all-reduce backward: where a replicated activation enters column-parallel layers. */
export const Copy = defineFunction({
  name: "Copy",
  forward: (_ctx, x: Tensor) => x,
  backward: (_ctx, grad) => [allReduce(grad)],
});

/** All-reduce forward, identity backward: sums the partial outputs of row-parallel layers. */
export const Reduce = defineFunction({
  name: "Reduce",
  forward: (_ctx, x: Tensor) => allReduce(x),
  backward: (_ctx, grad) => [grad],
});

/** All-gather on the last dimension forward, split backward: a column layer's full output. */
export const Gather = defineFunction({
  name: "Gather",
  forward: (_ctx, x: Tensor) => gatherLastDim(x),
  backward: (_ctx, grad) => [splitLastDim(grad)],
});

/** Zeroes the vectors x[i, :] where keep[i] is 0, and their gradients (a masked_fill of whole rows). */
const MaskRows = defineFunction({
  name: "MaskRows",
  forward: (ctx, x: Tensor, keep: Tensor) => {
    ctx.keep = keep;
    return zeroRows(x, keep);
  },
  backward: (ctx, grad) => [zeroRows(grad, ctx.keep as Tensor), null],
});

function zeroRows(x: Tensor, keep: Tensor): Tensor {
  const out = x.values().slice() as Float32Array;
  const k = keep.values();
  const n = out.length / k.length;
  for (let i = 0; i < k.length; i++) if (k[i] === 0) out.fill(0, i * n, (i + 1) * n);
  return new Tensor(out, x.shape);
}

// ---- Parallel layers ----

function requireDivisible(layer: string, what: string, size: number, tp: number): void {
  if (size % tp !== 0) {
    throw new RangeError(`${layer}: ${what} ${size} is not divisible by the tensor parallel size ${tp}`);
  }
}

/** nn.Linear's init, U(-1/sqrt(in), 1/sqrt(in)), with `in` the full (master) in_features. */
function linearInit(inFeatures: number): nn.Parameter["init"] {
  const bound = 1 / Math.sqrt(inFeatures);
  return { kind: "uniform", low: -bound, high: bound };
}

/**
 * Y_i = X W_i^T with W_i the rank's rows of the master W [out, in]: output features
 * [rank * out/tp, (rank + 1) * out/tp). With gather_output, every rank gets the full Y.
 */
export class ColumnParallelLinear extends nn.Module {
  readonly output_size_per_partition: number;
  weight: nn.Parameter;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly gather_output = false,
  ) {
    super();
    const { tp_rank, tp_world_size } = pgm.process_group_manager;
    requireDivisible("ColumnParallelLinear", "out_features", outFeatures, tp_world_size);
    this.output_size_per_partition = outFeatures / tp_world_size;
    this.weight = new nn.Parameter([this.output_size_per_partition, inFeatures]); // W_i: [out/tp, in]
    this.weight.init = linearInit(inFeatures);
    // rows of W are contiguous: the shard is one block of the master tensor
    const start = tp_rank * this.output_size_per_partition * inFeatures;
    this.weight.masterIndex = (j) => start + j;
  }

  /** x: [..., in] (the same on every rank) -> [..., out/tp], or [..., out] with gather_output. */
  forward(x: Tensor): Tensor {
    const y = F.linear(Copy(x), this.weight); // [..., out/tp]
    return this.gather_output ? Gather(y) : y;
  }
}

/**
 * Y = sum_i X_i W_i^T with W_i the rank's columns of the master W [out, in] (input features
 * [rank * in/tp, (rank + 1) * in/tp)), and X_i the matching slice of the input, which the column layer
 * before it produced on this rank.
 */
export class RowParallelLinear extends nn.Module {
  readonly input_size_per_partition: number;
  weight: nn.Parameter;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    const { tp_rank, tp_world_size } = pgm.process_group_manager;
    requireDivisible("RowParallelLinear", "in_features", inFeatures, tp_world_size);
    const local = inFeatures / tp_world_size;
    this.input_size_per_partition = local;
    this.weight = new nn.Parameter([outFeatures, local]); // W_i: [out, in/tp]
    this.weight.init = linearInit(inFeatures);
    // element (r, c) of the shard is (r, rank * in/tp + c) of the master
    this.weight.masterIndex = (j) => Math.floor(j / local) * inFeatures + tp_rank * local + (j % local);
  }

  /** x: [..., in/tp] -> [..., out], summed over the ranks. */
  forward(x: Tensor): Tensor {
    return Reduce(F.linear(x, this.weight)); // partial sums [..., out] -> all-reduce
  }
}

/**
 * The embedding table cut by vocabulary rows: rank r holds ids [r * vocab/tp, (r + 1) * vocab/tp). Each
 * rank looks up the ids it owns, writes zeros for the others, and an all-reduce assembles the full
 * embeddings (exactly one rank contributes each token's vector).
 */
export class VocabParallelEmbedding extends nn.Module {
  readonly vocab_start_index: number;
  readonly vocab_end_index: number;
  readonly num_embeddings_per_partition: number;
  weight: nn.Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    const { tp_rank, tp_world_size } = pgm.process_group_manager;
    requireDivisible("VocabParallelEmbedding", "num_embeddings", numEmbeddings, tp_world_size);
    this.num_embeddings_per_partition = numEmbeddings / tp_world_size;
    this.vocab_start_index = tp_rank * this.num_embeddings_per_partition;
    this.vocab_end_index = this.vocab_start_index + this.num_embeddings_per_partition;
    this.weight = new nn.Parameter([this.num_embeddings_per_partition, embeddingDim]); // [vocab/tp, dim]
    this.weight.init = { kind: "normal", mean: 0, std: 1 };
    const start = this.vocab_start_index * embeddingDim;
    this.weight.masterIndex = (j) => start + j;
  }

  /** ids: [batch, seq] int32 -> [batch, seq, dim]. */
  forward(ids: Tensor): Tensor {
    const all = ids.values() as Int32Array;
    const masked_input = new Int32Array(all.length); // ids relative to this rank's slice; 0 where masked
    const keep = new Int32Array(all.length); // 1 where this rank owns the id
    for (let i = 0; i < all.length; i++) {
      const id = all[i]!;
      if (id < 0 || id >= this.numEmbeddings) {
        throw new RangeError(
          `embedding: token id ${id} is outside the vocabulary [0, ${this.numEmbeddings})`,
        );
      }
      if (id >= this.vocab_start_index && id < this.vocab_end_index) {
        masked_input[i] = id - this.vocab_start_index;
        keep[i] = 1;
      }
    }
    const output_parallel = F.embedding(new Tensor(masked_input, ids.shape), this.weight); // [batch, seq, dim]
    return Reduce(MaskRows(output_parallel, new Tensor(keep, ids.shape)));
  }
}

// ---- Applying TP to the model ----

/**
 * Throws, naming every dimension at fault, when `tpSize` does not divide the attention heads, the KV
 * heads, the hidden size, the MLP's intermediate size or the (padded) vocabulary.
 */
export function checkTensorParallel(config: LlamaConfig, tpSize: number): void {
  const dims: [string, number][] = [
    ["num_attention_heads", config.num_attention_heads],
    ["num_key_value_heads", config.num_key_value_heads],
    ["hidden_size", config.hidden_size],
    ["intermediate_size (ffn)", config.intermediate_size],
    ["vocab_size (padded)", config.vocab_size],
  ];
  const bad = dims.filter(([, n]) => n % tpSize !== 0);
  if (bad.length > 0) {
    const list = bad.map(([name, n]) => `${name} ${n}`).join(", ");
    throw new UsageError(
      `--tp_size ${tpSize}: ${list} ${bad.length === 1 ? "is" : "are"} not divisible by ${tpSize}; ` +
        `tensor parallelism splits each of them across the ranks`,
    );
  }
}

/** The weights of the parallel layers: each rank holds a 1/tp shard; the other parameters are replicated. */
export function shardedParameters(model: nn.Module): Set<nn.Parameter> {
  const sharded = new Set<nn.Parameter>();
  for (const m of model.modules()) {
    const parallel =
      m instanceof ColumnParallelLinear ||
      m instanceof RowParallelLinear ||
      m instanceof VocabParallelEmbedding;
    if (parallel) sharded.add(m.weight);
  }
  return sharded;
}

/** The single-process model's parameter count (for the log and MFU): shards count tp times, the rest once. */
export function numParametersTensorParallel(model: nn.Module): number {
  const tp = pgm.process_group_manager.tp_world_size;
  const sharded = shardedParameters(model);
  return model.parameters().reduce((n, p) => n + (sharded.has(p) ? tp * p.numel : p.numel), 0);
}

/**
 * The global L2 norm of the gradients, as the single-process model's (for clipping): the squares of
 * the shards summed over the tp group, those of the replicated parameters (equal on every rank) once.
 */
export function gradNormTensorParallel(model: nn.Module): number {
  const sharded = shardedParameters(model);
  const params = model.parameters();
  const squares = new Float64Array([optim.gradSquaredSum(params.filter((p) => sharded.has(p)))]);
  pgm.process_group_manager.tp_group.allreduce(squares, "sum");
  return Math.sqrt(squares[0]! + optim.gradSquaredSum(params.filter((p) => !sharded.has(p))));
}

/**
 * Swaps the model's layers for their parallel versions, each shard keeping its slice of the weights the
 * replaced layer had (loaded pretrained ones, say; initWeights after it gives a fresh model directly):
 * q/k/v/up/gate -> column, out/down -> row, the embedding -> vocab-parallel, the final projection ->
 * column with gathered logits. Each rank then runs heads/tp query heads and kv_heads/tp KV heads.
 */
export function apply_tensor_parallel(model: Llama): Llama {
  const tp = pgm.process_group_manager.tp_world_size;
  checkTensorParallel(model.config, tp);
  const column = (l: nn.Linear) => keepSlice(new ColumnParallelLinear(l.inFeatures, l.outFeatures), l);
  const row = (l: nn.Linear) => keepSlice(new RowParallelLinear(l.inFeatures, l.outFeatures), l);

  for (const { attention, mlp } of model.decoder_layers) {
    attention.q_proj = column(attention.q_proj); // [.., hidden] -> [.., heads/tp * head_dim]
    attention.k_proj = column(attention.k_proj); // [.., hidden] -> [.., kv_heads/tp * head_dim]
    attention.v_proj = column(attention.v_proj);
    attention.out_proj = row(attention.out_proj); // [.., hidden/tp] -> [.., hidden]
    attention.num_local_heads = model.config.num_attention_heads / tp;
    attention.num_local_kv_heads = model.config.num_key_value_heads / tp;
    mlp.up_proj = column(mlp.up_proj); // [.., hidden] -> [.., ffn/tp]
    mlp.gate_proj = column(mlp.gate_proj);
    mlp.down_proj = row(mlp.down_proj); // [.., ffn/tp] -> [.., hidden]
  }
  const { embedding, final_proj } = model;
  model.embedding = keepSlice(
    new VocabParallelEmbedding(embedding.numEmbeddings, embedding.embeddingDim),
    embedding,
  );
  model.final_proj = keepSlice(
    new ColumnParallelLinear(final_proj.inFeatures, final_proj.outFeatures, true),
    final_proj,
  );
  return model;
}

/** Gives the new layer's shard its elements of the replaced layer's weight (pretrained weights survive). */
function keepSlice<M extends { weight: nn.Parameter }>(layer: M, replaced: { weight: nn.Parameter }): M {
  const full = replaced.weight.values();
  const shard = layer.weight.storage as Float32Array;
  for (let j = 0; j < shard.length; j++) shard[j] = full[layer.weight.masterIndex(j)]!;
  return layer;
}
