// Pipeline parallelism: the decoder layers are cut into pp_size stages, one per pp rank (the first also has the
// embedding, the last the final norm, projection and loss). All-forward-all-backward: each stage runs all the
// step's forwards, then all their backwards, holding all the activations; the bubble is (pp - 1) / (m + pp - 1):
//   stage 0   F1 F2 F3 F4 .  .  .  .  .  .  B1 B2 B3 B4
//   stage 1   .  F1 F2 F3 F4 .  .  .  .  B1 B2 B3 B4 .
//   stage 2   .  .  F1 F2 F3 F4 .  .  B1 B2 B3 B4 .  .
//   stage 3   .  .  .  F1 F2 F3 F4 B1 B2 B3 B4 .  .  .
// One-forward-one-backward (1F1B): stage p runs pp - p - 1 warm-up forwards, then alternates a forward and a
// backward, then runs the remaining backwards: it holds at most pp - p micro-batches' activations, not all m
// (here m = 6: stage 0 holds 4), for the same bubble:
//   stage 0   F1 F2 F3 F4 .  .  .  B1 F5 B2 F6 B3 .  B4 .  B5 .  B6
//   stage 1   .  F1 F2 F3 .  .  B1 F4 B2 F5 B3 F6 B4 .  B5 .  B6 .
//   stage 2   .  .  F1 F2 .  B1 F3 B2 F4 B3 F5 B4 F6 B5 .  B6 .  .
//   stage 3   .  .  .  F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 .  .  .
import { UsageError } from "@picotron/argparse";
import { tracer } from "@picotron/profiler";
import { nn, type Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import type { DataParallelBucket } from "./data_parallel.ts";
import type { MicroBatchDataLoader } from "./dataloader.ts";
import { lossFn, type DecoderLayer, type Llama } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import { bidirectional_pipeline_communicate, pipeline_communicate } from "./pp_communications.ts";
import type { DataParallelReduceScatter } from "./zero.ts";

/** Stage pp_rank's decoder layers: num_layers // pp each, one more on the first num_layers % pp stages. */
export function distribute_layers(num_layers: number, pp_size: number, pp_rank: number): number[] {
  if (pp_size > num_layers)
    throw new UsageError(`--pp_size ${pp_size} > num_hidden_layers ${num_layers}: a stage without layers`);
  const [layers, extra] = [Math.floor(num_layers / pp_size), num_layers % pp_size];
  const start_layer = pp_rank * layers + Math.min(pp_rank, extra);
  return Array.from({ length: layers + (pp_rank < extra ? 1 : 0) }, (_, i) => start_layer + i);
}

class ModuleDict extends nn.Module {}

export class PipelineParallel extends nn.Module {
  readonly layer_distribution: number[];
  embedding: Llama["embedding"] | null; // null: the Python's nn.Identity()
  decoder_layers: ModuleDict & Record<number, DecoderLayer>;
  final_norm: Llama["final_norm"] | null;
  final_proj: Llama["final_proj"] | null;

  constructor(model: Llama, config: LlamaConfig) {
    super();
    const { pp_world_size, pp_rank, pp_is_first_stage, pp_is_last_stage } = pgm.process_group_manager;
    this.layer_distribution = distribute_layers(config.num_hidden_layers, pp_world_size, pp_rank);
    this.embedding = pp_is_first_stage ? model.embedding : null;
    // nn.ModuleDict: the layers keep their names (decoder_layers.4.mlp...), so the init is the 1-rank model's
    const layers = Object.fromEntries(this.layer_distribution.map((i) => [i, model.decoder_layers[i]!]));
    this.decoder_layers = Object.assign(new ModuleDict(), layers);
    this.final_norm = pp_is_last_stage ? model.final_norm : null;
    this.final_proj = pp_is_last_stage ? model.final_proj : null;
  }

  /** x: input_ids [mbs, seq] on the first stage, else the previous stage's activation [mbs, seq, hidden]. */
  forward(x: Tensor): Tensor {
    if (this.embedding) x = this.embedding.forward(x);
    for (const i of this.layer_distribution) x = this.decoder_layers[i]!.forward(x);
    if (this.final_norm) x = this.final_norm.forward(x);
    return this.final_proj ? this.final_proj.forward(x) : x; // the logits [mbs, seq, vocab] on the last stage
  }

  /** output_tensor_grad is null on the last stage, whose output is the loss (its gradient: 1). */
  backward(input_tensor: Tensor | null, output_tensor: Tensor, output_tensor_grad: Tensor | null) {
    output_tensor.backward(output_tensor_grad ?? undefined);
    return input_tensor ? input_tensor.grad : null; // a received activation is a leaf: it keeps its grad
  }
}

/** The stage, wrapped by DataParallelBucket (ZeRO-2: DataParallelReduceScatter) when dp > 1; what a schedule needs of the dataloader. */
export type PipelineModel =
  PipelineParallel | DataParallelBucket<PipelineParallel> | DataParallelReduceScatter<PipelineParallel>;
export type MicroBatches = Pick<MicroBatchDataLoader, "next" | "grad_acc_steps">;

// For the metrics (what 1F1B lowers): the most activation bytes the stage held in the last step. A micro-batch
// holds until its backward the buffers its output's graph reaches (parameters excluded; an op's private
// saved buffers are not seen: a lower bound); all have the same shapes: n in flight hold n times one's.
export let peak_activation_bytes = 0;
function count_activations(output_tensors: Tensor[]): void {
  const storages = new Set<Tensor["storage"]>(); // views share their base's
  for (const seen = new Set<Tensor>(), stack = [output_tensors.at(-1)!]; stack.length > 0;) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (!(t instanceof nn.Parameter)) storages.add(t.storage);
    for (const input of t.gradFn?.inputs ?? []) if (input) stack.push(input);
  }
  const bytes = [...storages].reduce((n, s) => n + s.byteLength, 0);
  peak_activation_bytes = Math.max(peak_activation_bytes, output_tensors.length * bytes);
}

/** All forwards, then all backwards. Returns the step's loss on the last stage, 0 on the others. */
export function train_step_pipeline_afab(
  model: PipelineModel,
  data_loader: MicroBatches,
  tensor_shapes: readonly number[], // [mbs, seq, hidden]
): number {
  let logging_loss = 0;
  const input_tensors: (Tensor | null)[] = [];
  const output_tensors: Tensor[] = [];
  const stage = model instanceof PipelineParallel ? model : model.module; // ours has no backward()
  peak_activation_bytes = 0;

  // === All Forward Pass Phase ===
  for (let i = 0; i < data_loader.grad_acc_steps; i++) {
    const input_tensor = pipeline_communicate("recv_forward", { shapes: tensor_shapes });
    const batch = data_loader.next();
    const forward = () => model.forward(input_tensor ?? batch.input_ids);
    let output_tensor = tracer.span("forward", "forward", forward, { microbatch: i });
    pipeline_communicate("send_forward", { tensor: output_tensor });
    // calculate loss on the last stage (divided as the 1-rank loop's, so are the gradients)
    if (pgm.process_group_manager.pp_is_last_stage) {
      output_tensor = lossFn(output_tensor, batch.target_ids).div(data_loader.grad_acc_steps);
      logging_loss += output_tensor.item();
    }
    input_tensors.push(input_tensor);
    output_tensors.push(output_tensor);
    count_activations(output_tensors);
  }

  // === All Backward Pass Phase ===
  for (let i = 0; i < data_loader.grad_acc_steps; i++) {
    if (!(model instanceof PipelineParallel))
      model.require_backward_grad_sync = i === data_loader.grad_acc_steps - 1;
    const output_tensor_grad = pipeline_communicate("recv_backward", { shapes: tensor_shapes });
    const [input_tensor, output_tensor] = [input_tensors.shift() ?? null, output_tensors.shift()!];
    const backward = () => stage.backward(input_tensor, output_tensor, output_tensor_grad);
    const input_tensor_grad = tracer.span("backward", "backward", backward, { microbatch: i });
    pipeline_communicate("send_backward", { tensor: input_tensor_grad });
  }
  // the last buckets' all-reduces may still be in flight: clipping and the optimizer need the averages
  if (!(model instanceof PipelineParallel))
    tracer.span("gradient_sync", "all-reduce", () => model.finishGradientSynchronization());
  return logging_loss;
}

/** Warm-up forwards, a steady state of one forward and one backward, cool-down backwards; returns as AFAB. */
export function train_step_pipeline_1f1b(
  model: PipelineModel,
  data_loader: MicroBatches,
  tensor_shapes: readonly number[], // [mbs, seq, hidden]
): number {
  const { pp_world_size, pp_rank, pp_is_last_stage } = pgm.process_group_manager;
  const num_warmup_microbatches = Math.min(pp_world_size - pp_rank - 1, data_loader.grad_acc_steps);
  const num_microbatches_remaining = data_loader.grad_acc_steps - num_warmup_microbatches;
  let logging_loss = 0;
  const input_tensors: (Tensor | null)[] = [];
  const output_tensors: Tensor[] = [];
  const stage = model instanceof PipelineParallel ? model : model.module; // ours has no backward()
  let [forwards, backwards] = [0, 0]; // the micro-batches' indices, for --trace
  peak_activation_bytes = 0;

  const _forward_step = (input_tensor: Tensor | null): Tensor => {
    const batch = data_loader.next();
    const forward = () => model.forward(input_tensor ?? batch.input_ids);
    let output_tensor = tracer.span("forward", "forward", forward, { microbatch: forwards++ });
    // calculate loss on the last stage
    if (pp_is_last_stage) {
      output_tensor = lossFn(output_tensor, batch.target_ids).div(data_loader.grad_acc_steps);
      logging_loss += output_tensor.item();
    }
    input_tensors.push(input_tensor);
    output_tensors.push(output_tensor);
    count_activations(output_tensors);
    return output_tensor;
  };
  // the oldest micro-batch's backward
  const _backward_step = (output_tensor_grad: Tensor | null): Tensor | null => {
    const [input_tensor, output_tensor] = [input_tensors.shift() ?? null, output_tensors.shift()!];
    const backward = () => stage.backward(input_tensor, output_tensor, output_tensor_grad);
    return tracer.span("backward", "backward", backward, { microbatch: backwards++ });
  };

  // === Warmup forward passes ===
  for (let i = 0; i < num_warmup_microbatches; i++) {
    const input_tensor = pipeline_communicate("recv_forward", { shapes: tensor_shapes });
    pipeline_communicate("send_forward", { tensor: _forward_step(input_tensor) });
  }
  let input_tensor =
    num_microbatches_remaining > 0 ? pipeline_communicate("recv_forward", { shapes: tensor_shapes }) : null;
  if (!(model instanceof PipelineParallel)) model.require_backward_grad_sync = false;

  // === 1F1B steady state ===
  for (let i = 0; i < num_microbatches_remaining; i++) {
    const is_last_iteration = i === num_microbatches_remaining - 1;
    const output_tensor = _forward_step(input_tensor);
    const output_tensor_grad = bidirectional_pipeline_communicate(
      "send_fwd_recv_bwd",
      output_tensor,
      tensor_shapes,
    );
    // the step's last backward syncs the gradients: here on the last stage (no warm-up), else in the cool-down
    if (!(model instanceof PipelineParallel) && num_warmup_microbatches === 0 && is_last_iteration)
      model.require_backward_grad_sync = true;
    const input_tensor_grad = _backward_step(output_tensor_grad);
    if (is_last_iteration) pipeline_communicate("send_backward", { tensor: input_tensor_grad });
    else
      input_tensor = bidirectional_pipeline_communicate(
        "send_bwd_recv_fwd",
        input_tensor_grad,
        tensor_shapes,
      );
  }

  // === Cooldown backward passes ===
  for (let i = 0; i < num_warmup_microbatches; i++) {
    if (!(model instanceof PipelineParallel))
      model.require_backward_grad_sync = i === num_warmup_microbatches - 1;
    const output_tensor_grad = pipeline_communicate("recv_backward", { shapes: tensor_shapes });
    pipeline_communicate("send_backward", { tensor: _backward_step(output_tensor_grad) });
  }
  if (!(model instanceof PipelineParallel))
    tracer.span("gradient_sync", "all-reduce", () => model.finishGradientSynchronization());
  return logging_loss;
}
