// View and layout ops: reshape/transpose/narrow share storage; contiguous/cat copy.
import { Tensor, numelOf, shapeStr, normDim, contiguousStrides, stridedCopy } from "../tensor.ts";
import { withGrad } from "../autograd.ts";

export { stridedCopy };

export function contiguous(t: Tensor): Tensor {
  return withGrad(new Tensor(stridedCopy(t), t.shape), "Contiguous", [t], (g) => [g]);
}

function inferShape(numel: number, shape: readonly number[]): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const known = numelOf(out.filter((_, i) => i !== neg));
    out[neg] = known === 0 ? 0 : numel / known;
  }
  if (numelOf(out) !== numel || !out.every(Number.isInteger)) {
    throw new RangeError(`cannot reshape ${numel} elements into ${shapeStr(shape)}`);
  }
  return out;
}

export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(t.numel, shape);
  const src = t.isContiguous() ? t : contiguous(t);
  const out = new Tensor(src.storage, target, contiguousStrides(target), src.offset);
  return withGrad(out, "Reshape", [src], (g) => [reshape(g, src.shape)]);
}

export function transpose(t: Tensor, dim0: number, dim1: number): Tensor {
  const a = normDim(dim0, t.ndim);
  const b = normDim(dim1, t.ndim);
  const shape = [...t.shape];
  const strides = [...t.strides];
  [shape[a], shape[b]] = [shape[b]!, shape[a]!];
  [strides[a], strides[b]] = [strides[b]!, strides[a]!];
  const out = new Tensor(t.storage, shape, strides, t.offset);
  return withGrad(out, "Transpose", [t], (g) => [transpose(g, a, b)]);
}

export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim(dim, t.ndim);
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(length) ||
    start < 0 ||
    length < 0 ||
    start + length > t.shape[d]!
  ) {
    throw new RangeError(
      `narrow: [${start}, ${start + length}) is outside dimension ${d} of size ${t.shape[d]}`,
    );
  }
  const shape = [...t.shape];
  shape[d] = length;
  const out = new Tensor(t.storage, shape, t.strides, t.offset + start * t.strides[d]!);
  return withGrad(out, "Narrow", [t], (g) => {
    // scatter the slice's gradient into zeros of the input's shape
    const full = new Tensor(new Float32Array(t.numel), t.shape);
    const window = new Tensor(full.storage, shape, full.strides, start * full.strides[d]!);
    copyInto(window, g);
    return [full];
  });
}

export function split(t: Tensor, splitSize: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim(dim, t.ndim);
  const total = t.shape[d]!;
  const sizes: number[] = [];
  if (typeof splitSize === "number") {
    if (!(splitSize > 0)) throw new RangeError(`split: size must be positive, got ${splitSize}`);
    for (let s = 0; s < total; s += splitSize) sizes.push(Math.min(splitSize, total - s));
  } else {
    if (splitSize.reduce((a, b) => a + b, 0) !== total) {
      throw new RangeError(`split: sizes [${splitSize}] do not add up to dimension ${d} of size ${total}`);
    }
    sizes.push(...splitSize);
  }
  let start = 0;
  return sizes.map((len) => {
    const part = narrow(t, d, start, len);
    start += len;
    return part;
  });
}

/** Concatenates along `dim` into a new contiguous tensor. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new RangeError("cat: no tensors");
  const first = tensors[0]!;
  const d = normDim(dim, first.ndim);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new RangeError(
        `cat: shapes ${tensors.map((x) => shapeStr(x.shape)).join(", ")} differ outside dim ${d}`,
      );
    }
  }
  const shape = [...first.shape];
  shape[d] = tensors.reduce((a, t) => a + t.shape[d]!, 0);
  const out = new Tensor(
    first.dtype === "int32" ? new Int32Array(numelOf(shape)) : new Float32Array(numelOf(shape)),
    shape,
  );
  let start = 0;
  const starts = tensors.map((t) => {
    const s = start;
    copyInto(narrowView(out, d, s, t.shape[d]!), t);
    start += t.shape[d]!;
    return s;
  });
  return withGrad(out, "Cat", tensors, (g) =>
    tensors.map((t, i) => narrowView(g, d, starts[i]!, t.shape[d]!)),
  );
}

function narrowView(t: Tensor, d: number, start: number, length: number): Tensor {
  const shape = [...t.shape];
  shape[d] = length;
  return new Tensor(t.storage, shape, t.strides, t.offset + start * t.strides[d]!);
}

/** dst[...] = src[...] for two tensors of one shape, any strides (no autograd). */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.ndim !== src.ndim || dst.shape.some((s, i) => s !== src.shape[i])) {
    throw new RangeError(`copy: shape ${shapeStr(src.shape)} into ${shapeStr(dst.shape)}`);
  }
  const values = src.values();
  if (dst.isContiguous()) {
    dst.storage.set(values, dst.offset);
    return;
  }
  // walk dst's strides in row-major order
  const nd = dst.ndim;
  const idx = new Array<number>(nd).fill(0);
  let p = dst.offset;
  for (let i = 0; i < values.length; i++) {
    dst.storage[p] = values[i]!;
    for (let k = nd - 1; k >= 0; k--) {
      idx[k]!++;
      p += dst.strides[k]!;
      if (idx[k]! < dst.shape[k]!) break;
      p -= dst.strides[k]! * dst.shape[k]!;
      idx[k] = 0;
    }
  }
}
