// The tutorial's Llama (step 1: model.py), on @picotron/tensor.
// Embedding -> N x DecoderLayer [RMSNorm -> Attention (GQA, RoPE) -> residual -> RMSNorm -> SwiGLU MLP
// -> residual] -> final RMSNorm -> final projection (not tied to the embedding).
import os from "node:os";
import { UsageError } from "@picotron/argparse";
import { F, nn, Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { ring_attention, update_rope_for_context_parallel } from "./context_parallel.ts";
import * as pgm from "./process_group_manager.ts";

/** cos/sin tables [seq_length, head_dim] of RoPE, computed in float32 as PyTorch does. */
export function get_cos_sin(seq_length: number, head_dim: number, base: number): [Tensor, Tensor] {
  if (head_dim % 2 !== 0) throw new RangeError(`RoPE needs an even head_dim, got ${head_dim}`);
  const half = head_dim / 2;
  const cos = new Float32Array(seq_length * head_dim);
  const sin = new Float32Array(seq_length * head_dim);
  for (let i = 0; i < half; i++) {
    // theta_i = 1 / base^(2i / d), each step rounded to float32 like torch's float tensors
    const theta = Math.fround(1 / Math.fround(base ** Math.fround((2 * i) / head_dim)));
    for (let p = 0; p < seq_length; p++) {
      const angle = Math.fround(p * theta);
      // the same angle for dimension i and i + d/2 (the tutorial's .repeat(1, 2))
      cos[p * head_dim + i] = cos[p * head_dim + i + half] = Math.cos(angle);
      sin[p * head_dim + i] = sin[p * head_dim + i + half] = Math.sin(angle);
    }
  }
  return [new Tensor(cos, [seq_length, head_dim]), new Tensor(sin, [seq_length, head_dim])];
}

/**
 * Incremental decoding's state (generation only): each layer's keys and values of the positions seen so far,
 * [batch, past, kv_heads, head_dim], and offset = past, the position of the next token (RoPE's offset).
 */
export interface KVCache {
  layers: { k: Tensor; v: Tensor }[];
  offset: number;
}

export class Attention extends nn.Module {
  num_local_heads: number;
  num_local_kv_heads: number;
  readonly head_dim: number;
  q_proj: nn.Linear;
  k_proj: nn.Linear;
  v_proj: nn.Linear;
  out_proj: nn.Linear;

  constructor(config: LlamaConfig) {
    super();
    this.num_local_heads = config.num_attention_heads;
    this.num_local_kv_heads = config.num_key_value_heads;
    this.head_dim = config.hidden_size / config.num_attention_heads;
    const h = config.hidden_size;
    this.q_proj = new nn.Linear(h, config.num_attention_heads * this.head_dim);
    this.k_proj = new nn.Linear(h, config.num_key_value_heads * this.head_dim);
    this.v_proj = new nn.Linear(h, config.num_key_value_heads * this.head_dim);
    this.out_proj = new nn.Linear(h, h);
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor, cache?: KVCache, layer_idx = 0): Tensor {
    const [batch, seq] = x.shape as [number, number];
    let q = this.q_proj.forward(x).view(batch, seq, this.num_local_heads, this.head_dim); // [batch, seq, heads, head_dim]
    let k = this.k_proj.forward(x).view(batch, seq, this.num_local_kv_heads, this.head_dim); // [batch, seq, kv_heads, head_dim]
    let v = this.v_proj.forward(x).view(batch, seq, this.num_local_kv_heads, this.head_dim); // [batch, seq, kv_heads, head_dim]
    q = F.apply_rotary_emb(q, cos, sin);
    k = F.apply_rotary_emb(k, cos, sin);
    if (cache) [k, v] = appendToCache(cache, layer_idx, k, v); // [batch, past + seq, kv_heads, head_dim]
    // causal softmax(q k^T / sqrt(head_dim)) v; each KV head serves heads/kv_heads query heads (GQA). With
    // context parallelism, seq is this cp rank's slice: ring attention brings the other slices' K/V to it.
    // Generation (the cache) runs on one rank, maybe with no process group at all.
    const out = // [batch, seq, heads, head_dim]
      cache
        ? cachedAttention(q, k, v)
        : cpWorldSize() > 1
          ? ring_attention(q, k, v)
          : F.causal_attention(q, k, v);
    return this.out_proj.forward(out.view(batch, seq, this.num_local_heads * this.head_dim)); // [batch, seq, hidden]
  }
}

/** Appends the new positions' K/V to the layer's cache; returns the keys/values of all positions so far. */
function appendToCache(cache: KVCache, layer_idx: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
  const past = cache.layers[layer_idx];
  if (past) [k, v] = [F.cat([past.k, k], 1), F.cat([past.v, v], 1)];
  cache.layers[layer_idx] = { k, v };
  return [k, v];
}

/**
 * Attention of the new queries q [batch, seq, heads, head_dim] over every key so far k, v [batch, past + seq,
 * kv_heads, head_dim]: a new query sees all past keys, and the new keys causally. One new token (decoding)
 * sees every key: attention without a mask, O(past) work. Several new tokens after no past (the prompt) is
 * the training path's causal attention. Several after a past: the queries are padded in front with past
 * zero rows to the keys' length, so the causal mask hides exactly the later new keys; the padding is cut off.
 */
function cachedAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const [batch, seq, heads, head_dim] = q.shape as [number, number, number, number];
  const past = k.shape[1]! - seq;
  if (seq === 1) return F.block_attention_forward(q, k, v, false).out;
  if (past === 0) return F.causal_attention(q, k, v);
  const padded = F.cat(
    [new Tensor(new Float32Array(batch * past * heads * head_dim), [batch, past, heads, head_dim]), q],
    1,
  );
  return F.causal_attention(padded, k, v).narrow(1, past, seq);
}

/** The cp world size; 1 without a process group (generation runs the model on one rank, outside mpirun). */
function cpWorldSize(): number {
  const manager = pgm.process_group_manager as pgm.ProcessGroupManager | undefined;
  return manager?.cp_world_size ?? 1;
}

export class MLP extends nn.Module {
  up_proj: nn.Linear;
  gate_proj: nn.Linear;
  down_proj: nn.Linear;

  constructor(config: LlamaConfig) {
    super();
    this.up_proj = new nn.Linear(config.hidden_size, config.intermediate_size);
    this.gate_proj = new nn.Linear(config.hidden_size, config.intermediate_size);
    this.down_proj = new nn.Linear(config.intermediate_size, config.hidden_size);
  }

  forward(x: Tensor): Tensor {
    // down(silu(gate(x)) * up(x)), with silu(.) * . fused into one kernel
    return this.down_proj.forward(F.swiglu(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

export class DecoderLayer extends nn.Module {
  input_layernorm: nn.RMSNorm;
  post_attention_layernorm: nn.RMSNorm;
  attention: Attention;
  mlp: MLP;
  readonly cos: Tensor;
  readonly sin: Tensor;

  constructor(config: LlamaConfig) {
    super();
    this.input_layernorm = new nn.RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.post_attention_layernorm = new nn.RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.attention = new Attention(config);
    this.mlp = new MLP(config);
    const head_dim = config.hidden_size / config.num_attention_heads;
    [this.cos, this.sin] = get_cos_sin(config.max_position_embeddings, head_dim, config.rope_theta); // [max_pos, head_dim]
  }

  forward(x: Tensor, cache?: KVCache, layer_idx = 0): Tensor {
    const seq = x.shape[1]!; // this cp rank's positions of the sequence
    const start = cache?.offset ?? 0; // generation (one rank): the new tokens' positions after the cached ones
    const [cos, sin] =
      cpWorldSize() > 1
        ? update_rope_for_context_parallel(this.cos, this.sin, seq)
        : [this.cos.narrow(0, start, seq), this.sin.narrow(0, start, seq)];
    x = x.add(this.attention.forward(this.input_layernorm.forward(x), cos, sin, cache, layer_idx)); // attention + residual
    return x.add(this.mlp.forward(this.post_attention_layernorm.forward(x))); // MLP + residual
  }
}

export class Llama extends nn.Module {
  embedding: nn.Embedding;
  decoder_layers: DecoderLayer[];
  final_norm: nn.RMSNorm;
  final_proj: nn.Linear;

  constructor(readonly config: LlamaConfig) {
    super();
    const { hidden_size: h, num_attention_heads: heads, num_key_value_heads: kv_heads } = config;
    if (h % heads !== 0)
      throw new UsageError(`--hidden_size ${h} is not divisible by --num_attention_heads ${heads}`);
    if (heads % kv_heads !== 0)
      throw new UsageError(
        `--num_attention_heads ${heads} is not divisible by --num_key_value_heads ${kv_heads}`,
      );
    checkMemory(config);
    this.embedding = new nn.Embedding(config.vocab_size, config.hidden_size);
    this.decoder_layers = Array.from({ length: config.num_hidden_layers }, () => new DecoderLayer(config));
    this.final_norm = new nn.RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.final_proj = new nn.Linear(config.hidden_size, config.vocab_size);
  }

  /**
   * input_ids: [batch, seq/cp] int32 (this cp rank's slice) -> logits [batch, seq/cp, vocab]. With a cache
   * (generation on one rank, under noGrad): the positions after cache.offset; the cache grows by seq.
   */
  forward(input_ids: Tensor, cache?: KVCache): Tensor {
    const seqLen = cache // the cp ranks' slices together; generation: the cached positions and the new ones
      ? cache.offset + input_ids.shape[1]!
      : input_ids.shape[1]! * cpWorldSize();
    if (seqLen > this.config.max_position_embeddings) {
      throw new RangeError(
        `sequence length ${seqLen} exceeds max_position_embeddings ${this.config.max_position_embeddings}`,
      );
    }
    let x = this.embedding.forward(input_ids); // [batch, seq, hidden]
    this.decoder_layers.forEach((layer, i) => (x = layer.forward(x, cache, i)));
    if (cache) cache.offset = seqLen;
    return this.final_proj.forward(this.final_norm.forward(x)); // [batch, seq, vocab]
  }
}

/**
 * Refuses a model that cannot fit before allocating it: 16 bytes a parameter (fp32 weights, gradients and
 * AdamW's two moments) against this machine's memory, naming the flags that size it.
 */
function checkMemory(config: LlamaConfig): void {
  const { hidden_size: h, intermediate_size: ffn, vocab_size: vocab, num_hidden_layers: layers } = config;
  const kv = (h / config.num_attention_heads) * config.num_key_value_heads;
  const per_layer = 2 * h * h + 2 * h * kv + 3 * h * ffn + 2 * h; // q, o; k, v; gate, up, down; 2 norms
  const num_params = 2 * vocab * h + layers * per_layer + h;
  const GB = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
  if (num_params * 16 > os.totalmem())
    throw new UsageError(
      `the model needs ${GB(num_params * 16)} (${num_params.toExponential(2)} parameters x 16 bytes), ` +
        `more than this machine's ${GB(os.totalmem())}: lower --hidden_size, --intermediate_size or --num_hidden_layers`,
    );
}

/** Mean cross-entropy of next-token prediction: logits [batch, seq, vocab], targets [batch, seq]. */
export function lossFn(logits: Tensor, targetIds: Tensor): Tensor {
  const vocab = logits.shape[2]!;
  return F.cross_entropy(logits.view(-1, vocab), targetIds.view(-1));
}
