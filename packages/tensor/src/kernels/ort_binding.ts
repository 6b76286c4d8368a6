// The one place that touches onnxruntime-node's internals. The package's public `InferenceSession.run` is
// async (it defers to setImmediate); its native binding's `run` is synchronous, which is what a training
// loop wants. That binding is not a public API: its shape may change with any release, so we only load it
// from the versions checked here, and fail with one clear line on any other.
import { createRequire } from "node:module";
import { Tensor as OrtTensor } from "onnxruntime-common";

/** onnxruntime-node versions whose native binding (dist/binding.js) this adapter was written against. */
export const SUPPORTED_ORT_VERSIONS: readonly string[] = ["1.30.0"];

const require = createRequire(import.meta.url);

/** Throws when `installed` is not a version the adapter supports. */
export function checkOrtVersion(installed: string): void {
  if (!SUPPORTED_ORT_VERSIONS.includes(installed)) {
    throw new Error(
      `onnxruntime-node ${installed} is installed, but @picotron/tensor's kernel adapter supports only ` +
        `${SUPPORTED_ORT_VERSIONS.join(", ")} (it calls the package's internal synchronous binding); ` +
        `install onnxruntime-node@${SUPPORTED_ORT_VERSIONS.at(-1)}`,
    );
  }
}

export type OrtDType = "float32" | "int32" | "int64" | "bool";
export type OrtArray = Float32Array | Int32Array | BigInt64Array | Uint8Array;

/** A named tensor handed to a session: ORT wraps `data` without copying it. */
export interface OrtValue {
  name: string;
  dtype: OrtDType;
  data: OrtArray;
  shape: readonly number[];
}

export interface SessionOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  executionMode: "sequential" | "parallel";
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
  extra?: object;
}

/** A compiled model that runs synchronously, writing its outputs into the arrays it is given. */
export interface SyncSession {
  run(inputs: OrtValue[], outputs: OrtValue[]): void;
}

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>, options: object): unknown;
}
interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
}

let native: NativeBinding | null = null;

function load(): NativeBinding {
  if (native) return native;
  const version = (require("onnxruntime-node/package.json") as { version: string }).version;
  checkOrtVersion(version);
  native = require("onnxruntime-node/dist/binding") as NativeBinding;
  native.initOrt();
  return native;
}

/** The installed onnxruntime-node's version (for bench headers). */
export function ortVersion(): string {
  return (require("onnxruntime-node/package.json") as { version: string }).version;
}

/** Compiles a serialized ONNX model into a session. */
export function createSession(model: Uint8Array, options: SessionOptions): SyncSession {
  const { binding } = load();
  const session = new binding.InferenceSession();
  session.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options);
  const wrap = (values: OrtValue[]) => {
    const out: Record<string, OrtTensor> = {};
    for (const v of values) out[v.name] = new OrtTensor(v.dtype, v.data as Float32Array, v.shape);
    return out;
  };
  return { run: (inputs, outputs) => void session.run(wrap(inputs), wrap(outputs), {}) };
}
