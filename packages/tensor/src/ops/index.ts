export { stridedCopy, contiguous, reshape, transpose, narrow, split, cat, copyInto } from "./shape.ts";
export { add, sub, mul, scale, silu, swiglu } from "./elementwise.ts";
export { sum, mean } from "./reduce.ts";
export { linear, matmul, gemm } from "./matmul.ts";
export { embedding } from "./embedding.ts";
export { rmsNorm } from "./norm.ts";
export { applyRotaryEmb } from "./rope.ts";
export { causalAttention } from "./attention.ts";
export { crossEntropy } from "./loss.ts";
