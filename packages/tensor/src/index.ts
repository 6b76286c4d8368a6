// @picotron/tensor: the project's "torch".
import "./methods.ts"; // attaches x.add(y), x.backward(), ... to Tensor (see methods.ts)
export { Tensor, tensor, zeros, ones, full, arange, numelOf, shapeStr, type DType } from "./tensor.ts";
export {
  noGrad,
  isGradEnabled,
  withGrad,
  defineFunction,
  type FunctionCtx,
  type FunctionSpec,
} from "./autograd.ts";
export { Generator, fillRandom, type Distribution } from "./random.ts";
export { setNumThreads, getNumThreads, kernelCacheSize } from "./kernels/ort.ts";
export {
  setGemmBackend,
  getGemmBackend,
  gemmBackendSummary,
  gemmChoices,
  measureGemmShape,
  remeasureGemmChoices,
  type GemmMode,
  type GemmChoice,
} from "./kernels/gemm.ts";
export { blasDescription, blasThreadTimeout } from "./kernels/blas.ts";
export { measurePeakFlops } from "./peak.ts";
export { profile, ProfileReport, type ProfileRow } from "./profiler.ts";
export { loadSafetensors, saveSafetensors, serializeSafetensors, SafetensorsError } from "./safetensors.ts";
export * as F from "./functional.ts";
export * as nn from "./nn/index.ts";
export * as optim from "./optim/index.ts";
export { copyInto, gemm } from "./ops/index.ts";
export { gradcheck, type GradcheckResult } from "./gradcheck.ts";
