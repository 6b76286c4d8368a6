// onnxruntime-node as a kernel library: each distinct (op, dtypes, shapes, attributes) is compiled once
// into an InferenceSession and then run synchronously on our own buffers (no copies: ORT wraps the
// TypedArrays we pass, and writes outputs straight into preallocated TypedArrays).
import os from "node:os";
import { GraphBuilder, type OnnxDType } from "./onnx.ts";
import { createSession, type OrtArray, type SyncSession } from "./ort_binding.ts";

export type KernelArray = OrtArray;
export interface KernelIO {
  data: KernelArray;
  shape: readonly number[];
}

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
    private readonly session: SyncSession,
    private readonly inputNames: string[],
    private readonly outputNames: string[],
    private readonly dtypesIn: OnnxDType[],
    private readonly dtypesOut: OnnxDType[],
  ) {}

  run(inputs: KernelIO[], outputs: KernelIO[]): void {
    this.session.run(
      inputs.map((x, i) => ({ name: this.inputNames[i]!, dtype: this.dtypesIn[i]!, ...x })),
      outputs.map((x, i) => ({ name: this.outputNames[i]!, dtype: this.dtypesOut[i]!, ...x })),
    );
  }
}

const cache = new Map<string, Kernel>();

/** Number of compiled kernels (tests use it to check that sessions are reused). */
export function kernelCacheSize(): number {
  return cache.size;
}

/**
 * The cache key of a kernel: the serialized ONNX model itself (every op, dtype, shape and attribute, byte
 * for byte) and the session's thread count, so two different graphs can never share a compiled session.
 * Building a small graph costs microseconds, against the milliseconds of the ops it runs.
 */
function cacheKey(model: Uint8Array): string {
  return `${numThreads}|${Buffer.from(model.buffer, model.byteOffset, model.byteLength).toString("latin1")}`;
}

/** The key `kernel(build)` caches under (exported for tests). */
export function kernelKey(build: (g: TypedGraph) => void): string {
  const g = new TypedGraph();
  build(g);
  return cacheKey(g.build());
}

/** The kernel of the graph that `build` describes, compiled the first time that exact graph is seen. */
export function kernel(build: (g: TypedGraph) => void): Kernel {
  const g = new TypedGraph();
  build(g);
  const model = g.build();
  const key = cacheKey(model);
  let k = cache.get(key);
  if (k) return k;
  const session = createSession(model, {
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
  cache.set(key, k);
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
