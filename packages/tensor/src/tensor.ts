// The Tensor: a typed storage plus shape/strides/offset (so reshape/transpose/narrow are views), and the
// autograd fields (requiresGrad, grad, gradFn). Math lives in ops/; the methods here delegate to it.
import { Node, backward as runBackward, isGradEnabled } from "./autograd.ts";
import * as ops from "./ops/index.ts";

export type DType = "float32" | "int32";
export type Storage = Float32Array | Int32Array;

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid shape ${shapeStr(shape)}`);
  }
}

export class Tensor {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  requiresGrad = false;
  /** Accumulated gradient (leaves, and non-leaves that called retainGrad()). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, null for leaves. */
  gradFn: Node | null = null;
  /** Set by retainGrad(): keep the gradient of a non-leaf. */
  retainsGrad = false;
  /** Hooks run once a leaf's gradient has been fully accumulated for the current backward pass. */
  readonly postAccumulateGradHooks: ((t: Tensor) => void)[] = [];

  constructor(storage: Storage, shape: readonly number[], strides?: readonly number[], offset = 0) {
    checkShape(shape);
    this.storage = storage;
    this.shape = shape;
    this.strides = strides ?? contiguousStrides(shape);
    this.offset = offset;
    if (!strides && storage.length < offset + numelOf(shape)) {
      throw new RangeError(`storage of ${storage.length} elements is too small for shape ${shapeStr(shape)}`);
    }
  }

  get dtype(): DType {
    return this.storage instanceof Int32Array ? "int32" : "float32";
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  size(dim: number): number {
    return this.shape[normDim(dim, this.ndim)]!;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  isContiguous(): boolean {
    let s = 1;
    for (let i = this.ndim - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i]!;
    }
    return true;
  }

  /** The elements in row-major order as a TypedArray; a view (no copy) when the tensor is contiguous. */
  values(): Storage {
    if (this.isContiguous()) return this.storage.subarray(this.offset, this.offset + this.numel);
    return ops.stridedCopy(this);
  }

  /** Same values in a freshly allocated contiguous tensor (no autograd). */
  clone(): Tensor {
    return new Tensor(this.values().slice(), this.shape);
  }

  item(): number {
    if (this.numel !== 1)
      throw new RangeError(`item() needs a tensor with one element, got shape ${shapeStr(this.shape)}`);
    return this.storage[this.offset]!;
  }

  toArray(): number[] {
    return Array.from(this.values());
  }

  // ---- autograd ----
  requiresGrad_(flag = true): this {
    if (flag && this.dtype !== "float32") throw new TypeError("only float32 tensors can require gradients");
    if (!this.isLeaf) throw new Error("requiresGrad_ is for leaf tensors; use detach() first");
    this.requiresGrad = flag;
    return this;
  }
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }
  /** A tensor sharing this one's storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset);
  }
  /** backward() on a scalar, or backward(gradOutput) on any tensor (pipeline parallelism needs the latter). */
  backward(gradOutput?: Tensor): void {
    runBackward(this, gradOutput);
  }
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): void {
    if (!this.isLeaf)
      throw new Error("registerPostAccumulateGradHook: only leaf tensors accumulate gradients");
    this.postAccumulateGradHooks.push(hook);
  }

  // ---- views (share storage; differentiable) ----
  view(...shape: number[]): Tensor {
    return ops.reshape(this, shape);
  }
  reshape(...shape: number[]): Tensor {
    return ops.reshape(this, shape);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return ops.transpose(this, dim0, dim1);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.narrow(this, dim, start, length);
  }
  split(splitSize: number | number[], dim = 0): Tensor[] {
    return ops.split(this, splitSize, dim);
  }
  contiguous(): Tensor {
    return this.isContiguous() ? this : ops.contiguous(this);
  }

  // ---- math ----
  add(other: Tensor): Tensor {
    return ops.add(this, other);
  }
  sub(other: Tensor): Tensor {
    return ops.sub(this, other);
  }
  mul(other: Tensor | number): Tensor {
    return typeof other === "number" ? ops.scale(this, other) : ops.mul(this, other);
  }
  div(value: number): Tensor {
    return ops.scale(this, 1 / value);
  }
  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }
  sum(): Tensor {
    return ops.sum(this);
  }
  mean(): Tensor {
    return ops.mean(this);
  }

  toString(): string {
    const v = this.values();
    const head = Array.from(v.subarray(0, 6), (x) => +x.toFixed(4)).join(", ");
    return `Tensor(shape=${shapeStr(this.shape)}, dtype=${this.dtype}, [${head}${v.length > 6 ? ", ..." : ""}])`;
  }
}

export function normDim(dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= ndim) throw new RangeError(`dimension ${dim} out of range for a ${ndim}-d tensor`);
  return d;
}

// ---- factories ----
export function tensor(
  data: ArrayLike<number> | Storage,
  shape?: readonly number[],
  dtype: DType = "float32",
): Tensor {
  const storage =
    data instanceof Float32Array || data instanceof Int32Array
      ? data
      : dtype === "int32"
        ? Int32Array.from(data)
        : Float32Array.from(data);
  const s = shape ?? [storage.length];
  if (numelOf(s) !== storage.length) {
    throw new RangeError(`tensor: ${storage.length} values do not fill shape ${shapeStr(s)}`);
  }
  return new Tensor(storage, s);
}
export function zeros(shape: readonly number[], dtype: DType = "float32"): Tensor {
  checkShape(shape);
  const n = numelOf(shape);
  return new Tensor(dtype === "int32" ? new Int32Array(n) : new Float32Array(n), shape);
}
export function full(shape: readonly number[], value: number): Tensor {
  checkShape(shape);
  return new Tensor(new Float32Array(numelOf(shape)).fill(value), shape);
}
export function ones(shape: readonly number[]): Tensor {
  return full(shape, 1);
}
export function arange(n: number, dtype: DType = "int32"): Tensor {
  const t = zeros([n], dtype);
  for (let i = 0; i < n; i++) t.storage[i] = i;
  return t;
}

/** Wraps an op's output into the graph when gradients are on and some input needs one. */
export function withGrad(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradFn = new Node(
    name,
    inputs.map((t) => (t.requiresGrad ? t : null)),
    backward,
  );
  return out;
}
