import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  nn,
  loadSafetensors,
  saveSafetensors,
  serializeSafetensors,
  Tensor,
  tensor,
  fillRandom,
} from "../index.ts";

class Block extends nn.Module {
  norm = new nn.RMSNorm(4);
  proj = new nn.Linear(4, 3);
}
class Net extends nn.Module {
  embedding = new nn.Embedding(10, 4);
  layers = [new Block(), new Block()];
  final_proj = new nn.Linear(4, 10);
}

describe("nn.Module", () => {
  it("names parameters by field path, in declaration order", () => {
    expect(new Net().namedParameters().map(([n]) => n)).toEqual([
      "embedding.weight",
      "layers.0.norm.weight",
      "layers.0.proj.weight",
      "layers.1.norm.weight",
      "layers.1.proj.weight",
      "final_proj.weight",
    ]);
    expect(new Net().numParameters()).toBe(40 + 2 * (4 + 12) + 40);
  });

  it("initializes deterministically per (seed, name), as the tutorial's distributions", () => {
    const a = new Net().initWeights(3);
    const b = new Net().initWeights(3);
    const c = new Net().initWeights(4);
    expect(a.final_proj.weight.toArray()).toEqual(b.final_proj.weight.toArray());
    expect(a.final_proj.weight.toArray()).not.toEqual(c.final_proj.weight.toArray());
    // two layers of one shape get different values: the name is part of the key
    expect(a.layers[0]!.proj.weight.toArray()).not.toEqual(a.layers[1]!.proj.weight.toArray());
    const bound = 1 / Math.sqrt(4);
    expect(a.final_proj.weight.toArray().every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(a.layers[0]!.norm.weight.toArray()).toEqual([1, 1, 1, 1]);
  });

  it("a shard generated through masterIndex equals that slice of the full weight", () => {
    const full = new Float32Array(6 * 8);
    fillRandom(full, 1, "w", { kind: "normal", mean: 0, std: 1 });
    // columns 4..8 of a [6, 8] weight (a row-parallel shard)
    const shard = new Float32Array(6 * 4);
    fillRandom(
      shard,
      1,
      "w",
      { kind: "normal", mean: 0, std: 1 },
      (j) => Math.floor(j / 4) * 8 + 4 + (j % 4),
    );
    for (let r = 0; r < 6; r++)
      for (let c = 0; c < 4; c++) expect(shard[r * 4 + c]).toBe(full[r * 8 + 4 + c]);
    // and the normal stream has roughly unit variance
    const big = new Float32Array(20000);
    fillRandom(big, 1, "stats", { kind: "normal", mean: 0, std: 1 });
    const mean = big.reduce((s, v) => s + v, 0) / big.length;
    const variance = big.reduce((s, v) => s + (v - mean) ** 2, 0) / big.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  it("round-trips its state dict through safetensors", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "st-"));
    const file = path.join(dir, "model.safetensors");
    const a = new Net().initWeights(1);
    saveSafetensors(file, a.stateDict(), { format: "pt" });
    const b = new Net();
    const loaded = loadSafetensors(file);
    expect(loaded.metadata).toEqual({ format: "pt" });
    b.loadStateDict(loaded.tensors);
    for (const [name, p] of a.namedParameters()) {
      expect(b.stateDict()[name]!.toArray()).toEqual(p.toArray());
    }
  });

  it("rejects a state dict with missing, unexpected or misshapen tensors", () => {
    const net = new Net();
    const state = { ...new Net().stateDict() };
    delete state["final_proj.weight"];
    expect(() => net.loadStateDict(state)).toThrow(/missing keys \[final_proj.weight\]/);
    expect(() => net.loadStateDict({ ...new Net().stateDict(), extra: tensor([1]) })).toThrow(
      /unexpected keys \[extra\]/,
    );
    expect(() =>
      net.loadStateDict({ ...new Net().stateDict(), "final_proj.weight": tensor([1, 2]) }),
    ).toThrow(/final_proj.weight has shape \[2\], the model expects \[10, 4\]/);
  });
});

describe("safetensors", () => {
  const tmp = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "st-")), "x.safetensors");

  it("writes the HF layout: u64 header length, JSON header, 8-byte aligned data", () => {
    const buf = serializeSafetensors({ a: tensor([1, 2, 3], [3]), ids: tensor([5, -1], [2], "int32") });
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    expect(header.a).toEqual({ dtype: "F32", shape: [3], data_offsets: [0, 12] });
    expect(header.ids).toEqual({ dtype: "I64", shape: [2], data_offsets: [12, 28] });
    expect(buf.readBigInt64LE(8 + n + 20)).toBe(-1n);
  });

  it("reads BF16 and F16 into float32", () => {
    const header = JSON.stringify({
      h: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
      b: { dtype: "BF16", shape: [1], data_offsets: [4, 6] },
    });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.alloc(6);
    data.writeUInt16LE(0x3c00, 0); // 1.0 in f16
    data.writeUInt16LE(0xc000, 2); // -2.0 in f16
    data.writeUInt16LE(0x4049, 4); // bf16 of ~3.140625
    const file = tmp();
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header), data]));
    const { tensors } = loadSafetensors(file);
    expect(tensors.h!.toArray()).toEqual([1, -2]);
    expect(tensors.b!.toArray()[0]).toBeCloseTo(3.140625, 6);
  });

  it("names the file in every error: missing, truncated, corrupt header", () => {
    const file = tmp();
    expect(() => loadSafetensors(file)).toThrow(new RegExp(`${file}: no such file`));
    const good = serializeSafetensors({ w: new Tensor(new Float32Array(100), [100]) });
    fs.writeFileSync(file, good.subarray(0, good.length - 10));
    expect(() => loadSafetensors(file)).toThrow(
      /x.safetensors: not a valid safetensors file \(tensor w spans .* truncated\?\)/,
    );
    fs.writeFileSync(file, good.subarray(0, 20));
    expect(() => loadSafetensors(file)).toThrow(/truncated\?/);
    const bad = Buffer.from(good);
    bad.write("{{{{", 8);
    fs.writeFileSync(file, bad);
    expect(() => loadSafetensors(file)).toThrow(/header is not JSON/);
  });

  it("writes atomically: no temporary file is left and an existing file is replaced whole", () => {
    const file = tmp();
    saveSafetensors(file, { a: tensor([1]) });
    saveSafetensors(file, { a: tensor([2]) });
    expect(loadSafetensors(file).tensors.a!.toArray()).toEqual([2]);
    expect(fs.readdirSync(path.dirname(file))).toEqual(["x.safetensors"]);
  });
});
