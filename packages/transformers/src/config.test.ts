import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, PRESETS, type LlamaConfig } from "./index.ts";

const tiny: LlamaConfig = {
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 16,
};

describe("configs", () => {
  it("has the tutorial's presets, by full or short name", async () => {
    expect((await loadConfig("SmolLM-135M")).hidden_size).toBe(576);
    expect(await loadConfig("HuggingFaceTB/SmolLM-360M-Instruct")).toEqual(
      PRESETS["HuggingFaceTB/SmolLM-360M"],
    );
    expect((await loadConfig("TinyLlama/TinyLlama_v1.1")).num_key_value_heads).toBe(4);
  });
  it("reads a local directory's config.json, and names what is wrong", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...tiny, model_type: "llama" }));
    expect(await loadConfig(dir)).toEqual(tiny);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ hidden_size: 8 }));
    await expect(loadConfig(dir)).rejects.toThrow(/config has no numeric "vocab_size"/);
  });
  it("pretrained: only a local directory with config.json will do, and the message names the flag", async () => {
    await expect(loadConfig("SmolLM-135M", { pretrained: true })).rejects.toThrow(
      /--init_from_pretrained needs --model_name to be a local HF Llama directory; .*SmolLM-135M has no config.json/,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...tiny, model_type: "llama" }));
    expect(await loadConfig(path.basename(dir), { cwd: path.dirname(dir), pretrained: true })).toEqual(tiny);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("an unknown name offline lists the presets", async () => {
    await expect(loadConfig("no-such-org/no-such-model-xyz")).rejects.toThrow(
      /Built-in presets: HuggingFaceTB\/SmolLM-135M/,
    );
  });
});
