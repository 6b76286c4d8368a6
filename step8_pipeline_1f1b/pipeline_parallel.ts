// Pipeline parallelism (the tutorial's pipeline_parallel.py): the decoder layers are cut into pp_size
// contiguous stages, one per pp rank; the first stage also holds the embedding, the last the final norm,
// the projection and the loss. A micro-batch's activation [mbs, seq, hidden] travels forward from stage
// to stage, and its gradient travels back the same way, point to point (pp_communications.ts).
//
// All-forward-all-backward (AFAB, GPipe): every stage runs the forward of all grad_acc micro-batches, then
// all their backwards. Simple, but each stage keeps the activations of every micro-batch until its backward,
// and stage p idles while the work ramps up and down the pipeline (the "bubble", (pp - 1) / (m + pp - 1) of
// the step for m micro-batches):
//
//   stage 0   F1 F2 F3 F4 .  .  .  .  .  .  B1 B2 B3 B4
//   stage 1   .  F1 F2 F3 F4 .  .  .  .  B1 B2 B3 B4 .
//   stage 2   .  .  F1 F2 F3 F4 .  .  B1 B2 B3 B4 .  .
//   stage 3   .  .  .  F1 F2 F3 F4 B1 B2 B3 B4 .  .  .
//
// One-forward-one-backward (1F1B, PipeDream-Flush): stage p runs pp - p - 1 warm-up forwards, then
// alternates one forward and one backward (steady state), then runs the remaining backwards (cool-down).
// A backward starts as soon as its gradient arrives, so stage p holds at most pp - p micro-batches'
// activations instead of all m; the bubble is the same as AFAB's (m = 6 here, stage 0 holds 4, not 6):
//
//   stage 0   F1 F2 F3 F4 .  .  .  B1 F5 B2 F6 B3 .  B4 .  B5 .  B6
//   stage 1   .  F1 F2 F3 .  .  B1 F4 B2 F5 B3 F6 B4 .  B5 .  B6 .
//   stage 2   .  .  F1 F2 .  B1 F3 B2 F4 B3 F5 B4 F6 B5 .  B6 .  .
//   stage 3   .  .  .  F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 .  .  .
//
// As in the tutorial, the whole model is built, apply_tensor_parallel splits its matrices, then
// PipelineParallel keeps this stage's part of it; with dp > 1 DataParallelBucket wraps the stage: its
// gradient hooks fire in the stage's backward as in step 6's, and the schedule lets only the step's last
// backward average the gradients over the replicas.
import { nn, type Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { DataParallelBucket } from "./data_parallel.ts";
import type { MicroBatchDataLoader } from "./dataloader.ts";
import { DecoderLayer, lossFn, type Llama } from "./model.ts";
import * as pgm from "./process_group_manager.ts";
import {
  recv_backward,
  recv_forward,
  send_backward,
  send_bwd_recv_fwd,
  send_forward,
  send_fwd_recv_bwd,
} from "./pp_communications.ts";
import { tracer } from "./trace.ts";

/**
 * The global indices of the decoder layers of stage `ppRank`: num_layers // pp each, and one more for the
 * first num_layers % pp stages (5 layers on 2 stages: [0, 1, 2] and [3, 4]).
 */
export function distribute_layers(num_layers: number, ppSize: number, ppRank: number): number[] {
  checkPipelineParallel(num_layers, ppSize);
  const layersPerStage = (p: number) => Math.floor(num_layers / ppSize) + (p < num_layers % ppSize ? 1 : 0);
  let start_layer = 0;
  for (let p = 0; p < ppRank; p++) start_layer += layersPerStage(p);
  return Array.from({ length: layersPerStage(ppRank) }, (_, i) => start_layer + i);
}

/** Throws when some stage would get no decoder layer (checked before launching anything). */
export function checkPipelineParallel(numLayers: number, ppSize: number): void {
  if (ppSize > numLayers) {
    throw new RangeError(
      `pipeline parallelism needs at least one decoder layer per stage: --pp_size ${ppSize} > num_hidden_layers ${numLayers}`,
    );
  }
}

/**
 * The tutorial's nn.ModuleDict({str(i): model.decoder_layers[i]}): this stage's decoder layers keyed by
 * their global index, so their parameters keep the whole model's names (decoder_layers.4.attention.q_proj.weight):
 * the deterministic init, keyed by name, gives every stage exactly the 1-rank model's weights, and
 * checkpoints keep picotron's names. Iterating yields the layers in order.
 */
export class StageLayers extends nn.Module {
  [index: number]: DecoderLayer;

  constructor(decoderLayers: readonly DecoderLayer[], indices: readonly number[]) {
    super();
    for (const i of indices) this[i] = decoderLayers[i]!;
  }

  *[Symbol.iterator](): Iterator<DecoderLayer> {
    // integer keys enumerate in ascending order
    for (const value of Object.values(this)) if (value instanceof DecoderLayer) yield value;
  }
}

/**
 * One pipeline stage, cut out of the whole model as in the tutorial: it keeps this stage's decoder layers,
 * the embedding on the first stage and the final norm and projection on the last; the other stages' modules
 * are dropped with the whole model. Built after apply_tensor_parallel, it keeps the parallel layers.
 */
export class PipelineParallel extends nn.Module {
  readonly layer_distribution: number[];
  embedding: Llama["embedding"] | null;
  decoder_layers: StageLayers;
  final_norm: Llama["final_norm"] | null;
  final_proj: Llama["final_proj"] | null;

  constructor(
    model: Llama,
    readonly config: LlamaConfig,
  ) {
    super();
    const { pp_rank, pp_world_size, pp_is_first_stage, pp_is_last_stage } = pgm.process_group_manager;
    this.layer_distribution = distribute_layers(config.num_hidden_layers, pp_world_size, pp_rank);
    this.embedding = pp_is_first_stage ? model.embedding : null;
    this.decoder_layers = new StageLayers(model.decoder_layers, this.layer_distribution);
    this.final_norm = pp_is_last_stage ? model.final_norm : null;
    this.final_proj = pp_is_last_stage ? model.final_proj : null;
  }

  /**
   * First stage: input_ids [mbs, seq] int32; other stages: the previous stage's activation [mbs, seq, hidden].
   * Returns the activation [mbs, seq, hidden] for the next stage, or the logits [mbs, seq, vocab] on the last.
   */
  forward(x: Tensor): Tensor {
    if (x.shape[1]! > this.config.max_position_embeddings) {
      throw new RangeError(
        `sequence length ${x.shape[1]} exceeds max_position_embeddings ${this.config.max_position_embeddings}`,
      );
    }
    if (this.embedding) x = this.embedding.forward(x); // [mbs, seq, hidden]
    for (const layer of this.decoder_layers) x = layer.forward(x); // [mbs, seq, hidden]
    if (this.final_norm && this.final_proj) x = this.final_proj.forward(this.final_norm.forward(x)); // [mbs, seq, vocab]
    return x;
  }

  /**
   * Backpropagates one micro-batch through this stage: `output_tensor` is the stage's output (the loss on the
   * last stage, whose gradient is 1), `output_tensor_grad` the gradient the next stage sent back. Returns the gradient of
   * the received activation, for the previous stage (null on the first stage, whose input is token ids).
   */
  backward(
    input_tensor: Tensor | null,
    output_tensor: Tensor,
    output_tensor_grad: Tensor | null,
  ): Tensor | null {
    output_tensor.backward(output_tensor_grad ?? undefined);
    if (!input_tensor) return null;
    if (!input_tensor.grad)
      throw new Error("pipeline backward: the stage's output_tensor does not depend on its input_tensor");
    return input_tensor.grad;
  }
}

// ---- Activation memory ----

/**
 * Bytes of activations one micro-batch keeps alive until its backward: every distinct buffer reachable from
 * its output through the autograd graph (op outputs, the received activation), parameters excluded. Buffers
 * an op keeps privately inside its backward closure (attention's probabilities) are invisible here, so this
 * is a lower bound, computed the same way for every schedule.
 */
export function activationBytes(output: Tensor): number {
  const seen = new Set<Tensor>();
  const buffers = new Set<Tensor["storage"]>(); // views share their base tensor's storage
  const stack = [output];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (!(t instanceof nn.Parameter)) buffers.add(t.storage);
    for (const input of t.gradFn?.inputs ?? []) if (input) stack.push(input);
  }
  let bytes = 0;
  for (const b of buffers) bytes += b.byteLength;
  return bytes;
}

// ---- The schedule ----

/** What a schedule needs of the MicroBatchDataLoader. */
export type MicroBatches = Pick<MicroBatchDataLoader, "next" | "grad_acc_steps">;

export interface PipelineStepResult {
  /** Sum over the micro-batches of loss / grad_acc on the last stage; 0 on the other stages. */
  loss: number;
  /** Peak live activation bytes on this stage during the step (see activationBytes). */
  peak_activation_bytes: number;
}

/** A stage, or with dp > 1 the stage wrapped by DataParallelBucket. */
export type PipelineModel = PipelineParallel | DataParallelBucket<PipelineParallel>;

/** A micro-batch between its forward and its backward on this stage. */
interface InFlight {
  input: Tensor | null;
  output: Tensor;
  bytes: number;
}

/**
 * This stage's forwards and backwards for one step; a schedule decides their order. A forward's micro-batch
 * stays in flight, its activations held, until its backward; backwards go oldest first. Counts the live
 * activation bytes and their peak, and sums the loss.
 */
class StageRunner {
  private readonly inFlight: InFlight[] = [];
  private forwards = 0;
  private backwards = 0;
  private liveBytes = 0;
  private peakBytes = 0;
  private loss = 0;

  constructor(
    private readonly model: PipelineModel,
    private readonly data_loader: MicroBatches,
  ) {}

  /**
   * The next micro-batch's forward on this stage. Every stage draws the batch, so the loaders stay in step;
   * the first stage reads its input_ids, the last its target_ids and returns the loss (divided by grad_acc
   * as in the single-process loop, so the gradients are the same).
   */
  forward(input_tensor: Tensor | null): Tensor {
    const batch = this.data_loader.next();
    const isLast = pgm.process_group_manager.pp_is_last_stage;
    const output = tracer.span(
      "forward",
      "forward",
      () => {
        const out = this.model.forward(input_tensor ?? batch.input_ids); // [mbs, seq, hidden] or logits [mbs, seq, vocab]
        return isLast ? lossFn(out, batch.target_ids).div(this.data_loader.grad_acc_steps) : out;
      },
      { microbatch: this.forwards++ },
    );
    if (isLast) this.loss += output.item();
    const bytes = activationBytes(output);
    this.liveBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    this.inFlight.push({ input: input_tensor, output, bytes });
    return output;
  }

  /** The oldest in-flight micro-batch's backward, given its output's gradient; returns its input's. */
  backward(output_tensor_grad: Tensor | null): Tensor | null {
    const f = this.inFlight.shift();
    if (!f) throw new Error("pipeline schedule: a backward without a micro-batch in flight");
    const { model } = this;
    // the earlier micro-batches only accumulate: the gradients are averaged once, in the last backward pass
    if (model instanceof DataParallelBucket) {
      model.require_backward_grad_sync = this.backwards === this.data_loader.grad_acc_steps - 1;
    }
    const stage = model instanceof DataParallelBucket ? model.module : model;
    const input_tensor_grad = tracer.span(
      "backward",
      "backward",
      () => stage.backward(f.input, f.output, output_tensor_grad),
      { microbatch: this.backwards++ },
    );
    this.liveBytes -= f.bytes; // the graph, and its activations, are freed
    return input_tensor_grad;
  }

  /** Ends the step: waits for the gradient buckets' all-reduces still in flight (dp > 1). */
  result(): PipelineStepResult {
    const { model } = this;
    if (model instanceof DataParallelBucket) {
      tracer.span("gradient_sync", "all-reduce", () => model.finishGradientSynchronization());
    }
    return { loss: this.loss, peak_activation_bytes: this.peakBytes };
  }
}

/** All forwards, then all backwards, over the step's grad_acc micro-batches. */
export function train_step_pipeline_afab(
  model: PipelineModel,
  data_loader: MicroBatches,
  tensor_shapes: readonly number[], // [mbs, seq, hidden]
): PipelineStepResult {
  const stage = new StageRunner(model, data_loader);
  for (let i = 0; i < data_loader.grad_acc_steps; i++)
    send_forward(stage.forward(recv_forward(tensor_shapes)));
  for (let i = 0; i < data_loader.grad_acc_steps; i++)
    send_backward(stage.backward(recv_backward(tensor_shapes)));
  return stage.result();
}

/**
 * One forward, one backward: warm-up forwards, a steady state that alternates a forward and a backward with
 * the bidirectional exchanges, and cool-down backwards. With fewer micro-batches than stages the warm-up
 * takes them all and the schedule becomes AFAB on the first stages.
 */
export function train_step_pipeline_1f1b(
  model: PipelineModel,
  data_loader: MicroBatches,
  tensor_shapes: readonly number[], // [mbs, seq, hidden]
): PipelineStepResult {
  const { pp_world_size, pp_rank } = pgm.process_group_manager;
  const m = data_loader.grad_acc_steps;
  const num_warmup_microbatches = Math.min(pp_world_size - pp_rank - 1, m);
  const num_microbatches_remaining = m - num_warmup_microbatches;
  const stage = new StageRunner(model, data_loader);

  // warm-up: fill the pipeline below this stage
  for (let i = 0; i < num_warmup_microbatches; i++) send_forward(stage.forward(recv_forward(tensor_shapes)));

  // steady state: the forward of micro-batch i + warm-up, then the backward of micro-batch i
  let input_tensor = num_microbatches_remaining > 0 ? recv_forward(tensor_shapes) : null;
  for (let i = 0; i < num_microbatches_remaining; i++) {
    const output_tensor_grad = send_fwd_recv_bwd(stage.forward(input_tensor), tensor_shapes);
    const input_tensor_grad = stage.backward(output_tensor_grad);
    if (i === num_microbatches_remaining - 1) send_backward(input_tensor_grad);
    else input_tensor = send_bwd_recv_fwd(input_tensor_grad, tensor_shapes);
  }

  // cool-down: the backwards of the warm-up micro-batches
  for (let i = 0; i < num_warmup_microbatches; i++)
    send_backward(stage.backward(recv_backward(tensor_shapes)));
  return stage.result();
}
