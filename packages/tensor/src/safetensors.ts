// safetensors (Hugging Face's format): 8-byte little-endian header length, a JSON header
// { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }, then the raw data.
// Reads F32, F16, BF16 (into float32), I64 and I32 (into int32); writes F32 and I64.
import fs from "node:fs";
import { Tensor, numelOf } from "./tensor.ts";

const BYTES = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 } as const;
type Dtype = keyof typeof BYTES;

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export class SafetensorsError extends Error {}

function fail(file: string, why: string): never {
  throw new SafetensorsError(`${file}: not a valid safetensors file (${why})`);
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(file: string, name: string, e: Entry, bytes: Buffer): Tensor {
  const n = numelOf(e.shape);
  const width = BYTES[e.dtype as Dtype];
  if (!width) fail(file, `tensor ${name} has unsupported dtype ${e.dtype}`);
  if (bytes.length !== n * width)
    fail(file, `tensor ${name}: ${bytes.length} bytes for shape [${e.shape}] of ${e.dtype}`);
  // copy into an aligned buffer (the header length makes data offsets arbitrary)
  const aligned = new Uint8Array(bytes).buffer;
  switch (e.dtype as Dtype) {
    case "F32":
      return new Tensor(new Float32Array(aligned), e.shape);
    case "F16": {
      const h = new Uint16Array(aligned);
      return new Tensor(Float32Array.from(h, f16ToF32), e.shape);
    }
    case "BF16": {
      // bfloat16 is the top half of a float32
      const h = new Uint16Array(aligned);
      const u = new Uint32Array(n);
      for (let i = 0; i < n; i++) u[i] = h[i]! << 16;
      return new Tensor(new Float32Array(u.buffer), e.shape);
    }
    case "I64": {
      const big = new BigInt64Array(aligned);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = Number(big[i]!);
        if (v !== (v | 0)) fail(file, `tensor ${name} holds ${v}, outside the int32 range`);
        out[i] = v;
      }
      return new Tensor(out, e.shape);
    }
    case "I32":
      return new Tensor(new Int32Array(aligned), e.shape);
  }
}

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export function loadSafetensors(file: string): SafetensorsFile {
  if (!fs.existsSync(file)) throw new SafetensorsError(`${file}: no such file`);
  const buf = fs.readFileSync(file);
  if (buf.length < 8) fail(file, `only ${buf.length} bytes`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8)
    fail(file, `header of ${headerLen} bytes but the file has ${buf.length}: truncated?`);
  let header: Record<string, Entry | Record<string, string>>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
  } catch (err) {
    fail(file, `header is not JSON: ${(err as Error).message}`);
  }
  const dataStart = 8 + headerLen;
  const tensors: Record<string, Tensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = value as Record<string, string>;
      continue;
    }
    const e = value as Entry;
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || typeof e.dtype !== "string") {
      fail(file, `entry ${name} lacks dtype/shape/data_offsets`);
    }
    const [begin, end] = e.data_offsets;
    if (!(begin <= end) || dataStart + end > buf.length) {
      fail(file, `tensor ${name} spans bytes [${begin}, ${end}) past the end of the data: truncated?`);
    }
    tensors[name] = decode(file, name, e, buf.subarray(dataStart + begin, dataStart + end));
  }
  return { tensors, metadata };
}

/** Serializes tensors (float32 as F32, int32 as I64) in the given order. */
export function serializeSafetensors(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const blobs: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const v = t.values();
    const blob =
      v instanceof Int32Array
        ? Buffer.from(BigInt64Array.from(v, (x) => BigInt(x)).buffer)
        : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    header[name] = {
      dtype: v instanceof Int32Array ? "I64" : "F32",
      shape: [...t.shape],
      data_offsets: [offset, offset + blob.length],
    };
    blobs.push(blob);
    offset += blob.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // data starts 8-byte aligned
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, "utf8"), ...blobs]);
}

/** Writes atomically: to a temporary file beside the target, then rename (a crash never leaves half a file). */
export function saveSafetensors(
  file: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, serializeSafetensors(tensors, metadata));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
