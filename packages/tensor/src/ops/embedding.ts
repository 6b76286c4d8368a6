// Embedding lookup: out[b, s, :] = weight[ids[b, s], :]. Backward scatter-adds rows into a dense dW.
import { Tensor, shapeStr } from "../tensor.ts";
import { withGrad } from "../autograd.ts";
import { uninitialized } from "./alloc.ts";

export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.dtype !== "int32") throw new TypeError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (weight.ndim !== 2)
    throw new RangeError(`embedding: weight must be [vocab, dim], got ${shapeStr(weight.shape)}`);
  const [vocab, dim] = weight.shape as [number, number];
  const idx = ids.values() as Int32Array;
  const w = weight.values() as Float32Array;
  const out = uninitialized(idx.length * dim);
  for (let i = 0; i < idx.length; i++) {
    const id = idx[i]!;
    if (id < 0 || id >= vocab)
      throw new RangeError(`embedding: token id ${id} is outside the vocabulary [0, ${vocab})`);
    out.set(w.subarray(id * dim, id * dim + dim), i * dim);
  }
  return withGrad(new Tensor(out, [...ids.shape, dim]), "Embedding", [weight], (g) => {
    const dw = new Float32Array(vocab * dim);
    scatterAddRows(g.values() as Float32Array, idx, dim, dw);
    return [new Tensor(dw, weight.shape)];
  });
}

/** dw[idx[i], :] += dy[i, :] (a top-level loop: V8 optimizes it once, not per closure). */
function scatterAddRows(dy: Float32Array, idx: Int32Array, dim: number, dw: Float32Array): void {
  for (let i = 0; i < idx.length; i++) {
    const src = i * dim;
    const dst = idx[i]! * dim;
    for (let j = 0; j < dim; j++) dw[dst + j] += dy[src + j]!;
  }
}
