// The three layers the Llama needs, initialized as the tutorial's PyTorch defaults.
import { Module, Parameter } from "./module.ts";
import { linear, embedding, rmsNorm } from "../ops/index.ts";
import type { Tensor } from "../tensor.ts";

/** y = x W^T (no bias); W: [out_features, in_features] ~ U(-1/sqrt(in), 1/sqrt(in)). */
export class Linear extends Module {
  weight: Parameter;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.weight = new Parameter([outFeatures, inFeatures]);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight.init = { kind: "uniform", low: -bound, high: bound };
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight);
  }
}

/** Lookup table [num_embeddings, dim] ~ N(0, 1). */
export class Embedding extends Module {
  weight: Parameter;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    this.weight = new Parameter([numEmbeddings, embeddingDim]);
    this.weight.init = { kind: "normal", mean: 0, std: 1 };
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

/** w * x / sqrt(mean(x^2) + eps), w initialized to ones. */
export class RMSNorm extends Module {
  weight: Parameter;
  constructor(
    dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = new Parameter([dim]);
    this.weight.init = null;
    this.weight.storage.fill(1);
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
