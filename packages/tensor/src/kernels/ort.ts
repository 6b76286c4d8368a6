// onnxruntime-node as a kernel library: each distinct (op, dtypes, shapes, attributes) is compiled once
// into an InferenceSession and then run synchronously on our own buffers (no copies: ORT wraps the
// TypedArrays we pass, and writes outputs straight into preallocated TypedArrays).
import { createRequire } from "node:module";
import os from "node:os";
import { Tensor as OrtTensor } from "onnxruntime-common";
import { GraphBuilder, type OnnxDType } from "./onnx.ts";

// The package's public `InferenceSession.run` is async (it defers to setImmediate); its native binding's
// `run` is synchronous, which is what a training loop wants.
const require = createRequire(import.meta.url);
const { binding, initOrt } = require("onnxruntime-node/dist/binding") as {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
};

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>, options: object): unknown;
}

export type KernelArray = Float32Array | Int32Array | BigInt64Array | Uint8Array;
export interface KernelIO {
  data: KernelArray;
  shape: readonly number[];
}

const ORT_TYPE = { float32: "float32", int32: "int32", int64: "int64", bool: "bool" } as const;

let numThreads = defaultThreads();

/** Default: the machine's cores shared among the MPI ranks running on it. */
function defaultThreads(): number {
  const env = process.env.PICOTRON_THREADS;
  if (env) return Math.max(1, Number.parseInt(env, 10) || 1);
  const localRanks = Number.parseInt(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? "1", 10) || 1;
  return Math.max(1, Math.floor(os.availableParallelism() / localRanks));
}

/** Threads for every kernel compiled from now on (sessions are cached per thread count). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  numThreads = n;
}
export function getNumThreads(): number {
  return numThreads;
}

export interface Kernel {
  /** Runs the graph: `inputs` and `outputs` in the order they were declared. */
  run(inputs: KernelIO[], outputs: KernelIO[]): void;
}

class OrtKernel implements Kernel {
  constructor(
    private readonly session: NativeSession,
    private readonly inputNames: string[],
    private readonly outputNames: string[],
    private readonly dtypesIn: OnnxDType[],
    private readonly dtypesOut: OnnxDType[],
  ) {}

  run(inputs: KernelIO[], outputs: KernelIO[]): void {
    const feeds: Record<string, OrtTensor> = {};
    const fetches: Record<string, OrtTensor> = {};
    inputs.forEach((x, i) => {
      feeds[this.inputNames[i]!] = new OrtTensor(ORT_TYPE[this.dtypesIn[i]!], x.data as any, x.shape);
    });
    outputs.forEach((x, i) => {
      fetches[this.outputNames[i]!] = new OrtTensor(ORT_TYPE[this.dtypesOut[i]!], x.data as any, x.shape);
    });
    this.session.run(feeds, fetches, {});
  }
}

const cache = new Map<string, Kernel>();
let ortReady = false;

/** Number of compiled kernels (tests use it to check that sessions are reused). */
export function kernelCacheSize(): number {
  return cache.size;
}

/**
 * The kernel for `key` (which must name everything the graph depends on: op, dtypes, shapes, attributes),
 * built by `build` the first time.
 */
export function kernel(key: string, build: (g: TypedGraph) => void): Kernel {
  const fullKey = `${key}|threads=${numThreads}`;
  let k = cache.get(fullKey);
  if (k) return k;
  if (!ortReady) {
    initOrt();
    ortReady = true;
  }
  const g = new TypedGraph();
  build(g);
  const bytes = g.build();
  const session = new binding.InferenceSession();
  session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: numThreads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // The CPU memory arena stays on (the default): it keeps the big intermediates, like the softmax of the
    // logits, from one run to the next (turning it off measured no faster on the bench step).
    // Idle kernel threads sleep instead of spinning: with several ranks per machine, spinning threads
    // steal the cores the other ranks compute on.
    extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
  });
  k = new OrtKernel(session, g.inputNames, g.outputNames, g.inputTypes, g.outputTypes);
  cache.set(fullKey, k);
  return k;
}

/** GraphBuilder that also remembers each input/output dtype, so `run` can wrap raw TypedArrays. */
export class TypedGraph extends GraphBuilder {
  readonly inputTypes: OnnxDType[] = [];
  readonly outputTypes: OnnxDType[] = [];
  override input(name: string, dtype: OnnxDType, shape: readonly number[]): string {
    this.inputTypes.push(dtype);
    return super.input(name, dtype, shape);
  }
  override output(value: string, dtype: OnnxDType, shape: readonly number[]): void {
    this.outputTypes.push(dtype);
    super.output(value, dtype, shape);
  }
}
