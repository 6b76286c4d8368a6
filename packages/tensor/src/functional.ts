// torch.nn.functional's counterpart: the differentiable ops by their PyTorch names.
export {
  linear,
  matmul,
  embedding,
  rmsNorm as rms_norm,
  silu,
  swiglu,
  applyRotaryEmb as apply_rotary_emb,
  causalAttention as causal_attention,
  blockAttentionForward as block_attention_forward,
  blockAttentionBackward as block_attention_backward,
  crossEntropy as cross_entropy,
  cat,
  split,
} from "./ops/index.ts";
