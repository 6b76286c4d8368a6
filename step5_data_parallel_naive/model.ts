// The tutorial's Llama (step 1: model.py), on @picotron/tensor.
// Embedding -> N x DecoderLayer [RMSNorm -> Attention (GQA, RoPE) -> residual -> RMSNorm -> SwiGLU MLP
// -> residual] -> final RMSNorm -> final projection (not tied to the embedding).
import { F, nn, Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "./config.ts";

/** cos/sin tables [seq_length, head_dim] of RoPE, computed in float32 as PyTorch does. */
export function getCosSin(seqLength: number, headDim: number, base: number): [Tensor, Tensor] {
  if (headDim % 2 !== 0) throw new RangeError(`RoPE needs an even head_dim, got ${headDim}`);
  const half = headDim / 2;
  const cos = new Float32Array(seqLength * headDim);
  const sin = new Float32Array(seqLength * headDim);
  for (let i = 0; i < half; i++) {
    // theta_i = 1 / base^(2i / d), each step rounded to float32 like torch's float tensors
    const theta = Math.fround(1 / Math.fround(base ** Math.fround((2 * i) / headDim)));
    for (let p = 0; p < seqLength; p++) {
      const angle = Math.fround(p * theta);
      // the same angle for dimension i and i + d/2 (the tutorial's .repeat(1, 2))
      cos[p * headDim + i] = cos[p * headDim + i + half] = Math.cos(angle);
      sin[p * headDim + i] = sin[p * headDim + i + half] = Math.sin(angle);
    }
  }
  return [new Tensor(cos, [seqLength, headDim]), new Tensor(sin, [seqLength, headDim])];
}

export class Attention extends nn.Module {
  numLocalHeads: number;
  numLocalKvHeads: number;
  readonly headDim: number;
  q_proj: nn.Linear;
  k_proj: nn.Linear;
  v_proj: nn.Linear;
  out_proj: nn.Linear;

  constructor(config: LlamaConfig) {
    super();
    this.numLocalHeads = config.num_attention_heads;
    this.numLocalKvHeads = config.num_key_value_heads;
    this.headDim = config.hidden_size / config.num_attention_heads;
    const h = config.hidden_size;
    this.q_proj = new nn.Linear(h, config.num_attention_heads * this.headDim);
    this.k_proj = new nn.Linear(h, config.num_key_value_heads * this.headDim);
    this.v_proj = new nn.Linear(h, config.num_key_value_heads * this.headDim);
    this.out_proj = new nn.Linear(h, h);
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const [batch, seq] = x.shape as [number, number];
    let q = this.q_proj.forward(x).view(batch, seq, this.numLocalHeads, this.headDim); // [batch, seq, heads, head_dim]
    let k = this.k_proj.forward(x).view(batch, seq, this.numLocalKvHeads, this.headDim); // [batch, seq, kv_heads, head_dim]
    const v = this.v_proj.forward(x).view(batch, seq, this.numLocalKvHeads, this.headDim); // [batch, seq, kv_heads, head_dim]
    q = F.apply_rotary_emb(q, cos, sin);
    k = F.apply_rotary_emb(k, cos, sin);
    // causal softmax(q k^T / sqrt(head_dim)) v; each KV head serves heads/kv_heads query heads (GQA)
    const out = F.causal_attention(q, k, v); // [batch, seq, heads, head_dim]
    return this.out_proj.forward(out.view(batch, seq, this.numLocalHeads * this.headDim)); // [batch, seq, hidden]
  }
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
    const headDim = config.hidden_size / config.num_attention_heads;
    [this.cos, this.sin] = getCosSin(config.max_position_embeddings, headDim, config.rope_theta); // [max_pos, head_dim]
  }

  forward(x: Tensor): Tensor {
    const seq = x.shape[1]!;
    const cos = this.cos.narrow(0, 0, seq);
    const sin = this.sin.narrow(0, 0, seq);
    x = x.add(this.attention.forward(this.input_layernorm.forward(x), cos, sin)); // attention + residual
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
    if (config.hidden_size % config.num_attention_heads !== 0) {
      throw new RangeError(
        `hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${config.num_attention_heads}`,
      );
    }
    if (config.num_attention_heads % config.num_key_value_heads !== 0) {
      throw new RangeError(
        `num_attention_heads ${config.num_attention_heads} is not divisible by num_key_value_heads ${config.num_key_value_heads}`,
      );
    }
    this.embedding = new nn.Embedding(config.vocab_size, config.hidden_size);
    this.decoder_layers = Array.from({ length: config.num_hidden_layers }, () => new DecoderLayer(config));
    this.final_norm = new nn.RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.final_proj = new nn.Linear(config.hidden_size, config.vocab_size);
  }

  /** input_ids: [batch, seq] int32 -> logits [batch, seq, vocab]. */
  forward(inputIds: Tensor): Tensor {
    if (inputIds.shape[1]! > this.config.max_position_embeddings) {
      throw new RangeError(
        `sequence length ${inputIds.shape[1]} exceeds max_position_embeddings ${this.config.max_position_embeddings}`,
      );
    }
    let x = this.embedding.forward(inputIds); // [batch, seq, hidden]
    for (const layer of this.decoder_layers) x = layer.forward(x);
    return this.final_proj.forward(this.final_norm.forward(x)); // [batch, seq, vocab]
  }
}

/** Mean cross-entropy of next-token prediction: logits [batch, seq, vocab], targets [batch, seq]. */
export function lossFn(logits: Tensor, targetIds: Tensor): Tensor {
  const vocab = logits.shape[2]!;
  return F.cross_entropy(logits.view(-1, vocab), targetIds.view(-1));
}
