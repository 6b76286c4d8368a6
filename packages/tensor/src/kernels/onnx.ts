// A minimal ONNX model writer: just enough protobuf to describe one small graph per kernel.
// Field numbers come from onnx.proto (ModelProto, GraphProto, NodeProto, ...).

export type OnnxDType = "float32" | "int32" | "int64" | "bool";
const ELEM_TYPE: Record<OnnxDType, number> = { float32: 1, int32: 6, int64: 7, bool: 9 };

export type AttrValue = number | number[] | { float: number } | { floats: number[] };

/** Protobuf wire-format writer (varints and length-delimited fields only). */
class Proto {
  readonly bytes: number[] = [];
  varint(v: number): void {
    // Values here are small non-negative ints or negative int64 attributes (two's complement, 10 bytes).
    // Kernels are looked up by their serialized graph, so the common small case avoids BigInt.
    if (v >= 0 && v < 0x80000000) {
      while (v >= 0x80) {
        this.bytes.push((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      this.bytes.push(v);
      return;
    }
    let n = BigInt.asUintN(64, BigInt(v));
    while (n >= 0x80n) {
      this.bytes.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.bytes.push(Number(n));
  }
  int(field: number, v: number): this {
    this.varint(field << 3);
    this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.varint((field << 3) | 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.bytes.push(...b);
    return this;
  }
  msg(field: number, m: Proto | number[]): this {
    const b = m instanceof Proto ? m.bytes : m;
    this.varint((field << 3) | 2);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
    return this;
  }
  str(field: number, s: string): this {
    return this.msg(field, [...Buffer.from(s, "utf8")]);
  }
}

function valueInfo(name: string, dtype: OnnxDType, shape: readonly number[]): Proto {
  const dims = new Proto();
  for (const d of shape) dims.msg(1, new Proto().int(1, d));
  const tensorType = new Proto().int(1, ELEM_TYPE[dtype]).msg(2, dims);
  return new Proto().str(1, name).msg(2, new Proto().msg(1, tensorType));
}

function attribute(name: string, v: AttrValue): Proto {
  const a = new Proto().str(1, name);
  if (typeof v === "number") return a.int(3, v).int(20, 2); // INT
  if (Array.isArray(v)) {
    for (const x of v) a.int(8, x);
    return a.int(20, 7); // INTS
  }
  if ("float" in v) return a.float(2, v.float).int(20, 1); // FLOAT
  for (const x of v.floats) a.float(7, x);
  return a.int(20, 6); // FLOATS
}

/**
 * Builds one ONNX graph. Values are named by strings; `op` returns the name of its (first) output.
 *   const g = new GraphBuilder();
 *   const y = g.op("Gemm", [g.input("x", "float32", [m, k]), g.input("w", "float32", [n, k])], { transB: 1 });
 *   g.output(y, "float32", [m, n]);
 */
export class GraphBuilder {
  private readonly nodes: Proto[] = [];
  private readonly inputs: Proto[] = [];
  private readonly outputs: Proto[] = [];
  private counter = 0;
  readonly inputNames: string[] = [];
  readonly outputNames: string[] = [];

  input(name: string, dtype: OnnxDType, shape: readonly number[]): string {
    this.inputs.push(valueInfo(name, dtype, shape));
    this.inputNames.push(name);
    return name;
  }

  output(value: string, dtype: OnnxDType, shape: readonly number[]): void {
    this.outputs.push(valueInfo(value, dtype, shape));
    this.outputNames.push(value);
  }

  /** Adds a node; returns its outputs' names (`nOut` of them). */
  opN(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    nOut = 1,
    domain = "",
  ): string[] {
    const outs = Array.from({ length: nOut }, () => `t${this.counter++}`);
    const n = new Proto();
    for (const i of inputs) n.str(1, i);
    for (const o of outs) n.str(2, o);
    n.str(4, opType);
    for (const [k, v] of Object.entries(attrs)) n.msg(5, attribute(k, v));
    if (domain) n.str(7, domain);
    this.nodes.push(n);
    return outs;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(opType, inputs, attrs, 1)[0]!;
  }

  /** An onnxruntime contrib op (domain "com.microsoft"), e.g. FusedMatMul. */
  opDomain(opType: string, inputs: string[], attrs: Record<string, AttrValue>, domain: string): string {
    return this.opN(opType, inputs, attrs, 1, domain)[0]!;
  }

  /** A constant int64 tensor (shapes for Reshape, axes for reductions). */
  constInt64(values: readonly number[]): string {
    const packed = new Proto();
    for (const v of values) packed.varint(v);
    const t = new Proto().int(1, values.length).int(2, ELEM_TYPE.int64).msg(7, packed);
    return this.constTensor(t);
  }

  private constTensor(t: Proto): string {
    const out = `t${this.counter++}`;
    const attr = new Proto().str(1, "value").msg(5, t).int(20, 4); // TENSOR
    this.nodes.push(new Proto().str(2, out).str(4, "Constant").msg(5, attr));
    return out;
  }

  /** Serialized ModelProto (IR 8, default opset 17). */
  build(): Uint8Array {
    const graph = new Proto();
    for (const n of this.nodes) graph.msg(1, n);
    graph.str(2, "kernel");
    for (const i of this.inputs) graph.msg(11, i);
    for (const o of this.outputs) graph.msg(12, o);
    const model = new Proto()
      .int(1, 8)
      .msg(8, new Proto().str(1, "").int(2, 17))
      .msg(8, new Proto().str(1, "com.microsoft").int(2, 1))
      .msg(7, graph);
    return Uint8Array.from(model.bytes);
  }
}
