// The Tensor: a typed storage plus shape/strides/offset (so reshape/transpose/narrow are views), and the
// autograd fields (requiresGrad, grad, gradFn). This file imports nothing at run time, so the import graph
// has no cycles: tensor.ts <- autograd.ts <- ops/ (which run kernels/) <- methods.ts. The math methods
// (x.add(y), x.backward(), ...) are declared and attached to the prototype in methods.ts.

/** What autograd records on an op's output (autograd.ts's Node): its inputs and its backward closure. */
export interface GradNode {
  readonly name: string;
  /** The inputs that need a gradient (null where an input does not). */
  readonly inputs: readonly (Tensor | null)[];
  /** Maps the output's gradient to the inputs'; set to null once used, which frees its saved tensors. */
  backwardFn: ((grad: Tensor) => (Tensor | null)[]) | null;
}

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
  gradFn: GradNode | null = null;
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
    if (this.isContiguous()) {
      if (this.storage.length < this.offset + this.numel)
        throw new Error(`a ${shapeStr(this.shape)} tensor has no values: its storage was freed`);
      return this.storage.subarray(this.offset, this.offset + this.numel);
    }
    return stridedCopy(this);
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
  /**
   * Points the tensor at another storage, as torch's Tensor.set_ (and FSDP's p.data = ...): a parameter sharded
   * by ZeRO-3 holds its full values only around its layer's forward and backward, an empty storage between.
   * Ops read a weight's storage when they run, in backward too, so they see the values set then.
   */
  set_(storage: Storage): this {
    if (storage.length !== 0 && storage.length < this.offset + this.numel)
      throw new RangeError(`set_: ${storage.length} elements are too few for ${shapeStr(this.shape)}`);
    (this as { storage: Storage }).storage = storage;
    return this;
  }
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): void {
    if (!this.isLeaf)
      throw new Error("registerPostAccumulateGradHook: only leaf tensors accumulate gradients");
    this.postAccumulateGradHooks.push(hook);
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

/** Row-major copy of any strided tensor. */
export function stridedCopy(t: Tensor): Storage {
  const n = t.numel;
  const out = t.dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
  const nd = t.ndim;
  if (nd === 0) {
    out[0] = t.storage[t.offset]!;
    return out;
  }
  const { shape, strides, storage } = t;
  const idx = new Array<number>(nd).fill(0);
  const last = nd - 1;
  const lastLen = shape[last]!;
  const lastStride = strides[last]!;
  let src = t.offset;
  for (let o = 0; o < n; o += lastLen) {
    // copy one innermost row, then advance the multi-index like an odometer
    for (let j = 0, s = src; j < lastLen; j++, s += lastStride) out[o + j] = storage[s]!;
    for (let d = last - 1; d >= 0; d--) {
      idx[d]!++;
      src += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      src -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
