// Tensor's math and autograd methods (x.add(y), x.view(...), x.backward()), attached to the prototype
// here rather than written in tensor.ts: the ops import Tensor, so Tensor importing the ops would close an
// import cycle. index.ts imports this module once, before anything can call a method.
import { Tensor } from "./tensor.ts";
import { backward } from "./autograd.ts";
import * as ops from "./ops/index.ts";

declare module "./tensor.ts" {
  interface Tensor {
    /** backward() on a scalar, or backward(gradOutput) on any tensor (pipeline parallelism needs the latter). */
    backward(gradOutput?: Tensor): void;
    // views (share storage; differentiable)
    view(...shape: number[]): Tensor;
    reshape(...shape: number[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    split(splitSize: number | number[], dim?: number): Tensor[];
    contiguous(): Tensor;
    // math
    add(other: Tensor): Tensor;
    sub(other: Tensor): Tensor;
    mul(other: Tensor | number): Tensor;
    div(value: number): Tensor;
    matmul(other: Tensor): Tensor;
    sum(): Tensor;
    mean(): Tensor;
  }
}

const methods: ThisType<Tensor> & Partial<Tensor> = {
  backward(gradOutput?: Tensor) {
    backward(this, gradOutput);
  },
  view(...shape: number[]) {
    return ops.reshape(this, shape);
  },
  reshape(...shape: number[]) {
    return ops.reshape(this, shape);
  },
  transpose(dim0: number, dim1: number) {
    return ops.transpose(this, dim0, dim1);
  },
  narrow(dim: number, start: number, length: number) {
    return ops.narrow(this, dim, start, length);
  },
  split(splitSize: number | number[], dim = 0) {
    return ops.split(this, splitSize, dim);
  },
  contiguous() {
    return this.isContiguous() ? this : ops.contiguous(this);
  },
  add(other: Tensor) {
    return ops.add(this, other);
  },
  sub(other: Tensor) {
    return ops.sub(this, other);
  },
  mul(other: Tensor | number) {
    return typeof other === "number" ? ops.scale(this, other) : ops.mul(this, other);
  },
  div(value: number) {
    return ops.scale(this, 1 / value);
  },
  matmul(other: Tensor) {
    return ops.matmul(this, other);
  },
  sum() {
    return ops.sum(this);
  },
  mean() {
    return ops.mean(this);
  },
};
Object.assign(Tensor.prototype, methods);
