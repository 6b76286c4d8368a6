// Export to Hugging Face, end to end: tiny runs of step 4 (tp 1, tp 2) and step 7 (pp 2) save checkpoints,
// `export` turns each into an HF Llama folder, and PyTorch (../shared/anchors/torch_llama.py hf-logits, which
// reads the folder as transformers does) must give our logits; --init_from_pretrained reads the export back.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { loadSafetensors, Tensor } from "@picotron/tensor";
import { loadConfig } from "@picotron/transformers";
import { Llama } from "../step4_tensor_parallel/model.ts";
import { loadPretrained } from "@picotron/checkpoint";
import { exportToHf } from "@picotron/checkpoint/export";

const ROOT = path.resolve(import.meta.dirname, "..");
const CLI = path.join(ROOT, "packages", "checkpoint", "src", "export_cli.ts");
const STEP4 = path.join(ROOT, "step4_tensor_parallel");
const STEP7 = path.join(ROOT, "step7_pipeline_afab");
const ANCHOR = path.resolve(ROOT, "..", "shared", "anchors", "torch_llama.py");

function torchAvailable(): boolean {
  if (!fs.existsSync(ANCHOR)) return false;
  try {
    execFileSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const withTorch = torchAvailable();
if (!withTorch)
  console.warn("export.test: PyTorch checks skipped: /usr/bin/python3 with torch or the anchor is missing");

// 2 steps of 64 tokens: the layouts' weights are still equal to ~1e-7
const TINY = [
  "--dataset_name=stories.txt",
  "--tokenizer_name=bytes",
  "--hidden_size=64",
  "--intermediate_size=128",
  "--num_hidden_layers=2",
  "--num_attention_heads=4",
  "--num_key_value_heads=2",
  "--seq_len=32",
  "--micro_batch_size=2",
  "--max_tokens=128",
  "--omp_num_threads=1",
];
const IDS = [
  [1, 72, 101, 108, 108, 111, 32, 256],
  [84, 104, 101, 114, 101, 0, 319, 7],
];

let dir: string;
let freshLoss: number; // the tp 1 run's first loss: the untrained model's on the first batch

/** Runs a step's train.ts in the scratch folder (relative flags resolve there); rejects on failure. */
function train(stepDir: string, flags: string[]): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "train.ts", ...flags], {
    cwd: stepDir,
    env: { ...plainEnv(), INIT_CWD: dir, PICOTRON_CACHE_DIR: path.join(dir, "cache") },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`train exited ${code}:\n${out}`)),
    ),
  );
}

function firstLoss(out: string): number {
  return Number(/Step: 1, Loss: ([\d.]+)/.exec(out)?.[1]);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Our logits: the step's Llama built from the HF folder, as --init_from_pretrained builds it. */
async function ourLogits(hf: string): Promise<Float32Array> {
  const model = new Llama(await loadConfig(hf, { pretrained: true }));
  loadPretrained(hf, model);
  const ids = new Tensor(Int32Array.from(IDS.flat()), [IDS.length, IDS[0]!.length]);
  return model.forward(ids).values() as Float32Array;
}

function torchLogits(hf: string): number[] {
  const ids = IDS.map((r) => r.join(",")).join(";");
  const out = execFileSync("/usr/bin/python3", [ANCHOR, "hf-logits", hf, "--ids", ids], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
  });
  return (JSON.parse(out) as { logits: number[] }).logits;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "export-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(100));
  const [tp1] = await Promise.all([
    train(STEP4, [...TINY, "--save_dir=tp1"]),
    train(STEP4, [...TINY, "--save_dir=tp2", "--tp_size=2"]),
    train(STEP7, [...TINY, "--save_dir=pp2", "--pp_size=2"]),
  ]);
  freshLoss = firstLoss(tp1);
  for (const layout of ["tp1", "tp2", "pp2"])
    exportToHf(path.join(dir, layout, "step_000002"), path.join(dir, `hf_${layout}`));
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("export to Hugging Face", () => {
  it("writes a LlamaForCausalLM config with the padded vocabulary and HF names", () => {
    const hf = path.join(dir, "hf_tp2");
    const config = JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8"));
    expect(config).toMatchObject({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 320, // 257 byte tokens padded to a multiple of 64
      tie_word_embeddings: false,
      torch_dtype: "float32",
      num_key_value_heads: 2,
    });
    const names = Object.keys(loadSafetensors(path.join(hf, "model.safetensors")).tensors);
    expect(names).toContain("model.embed_tokens.weight");
    expect(names).toContain("model.layers.1.self_attn.o_proj.weight");
    expect(names).toContain("lm_head.weight");
    expect(names).toHaveLength(3 + 2 * 9);
  });

  it("reassembles tp 2 and pp 2 shards into the tp 1 run's weights", () => {
    const ref = loadSafetensors(path.join(dir, "hf_tp1", "model.safetensors")).tensors;
    for (const layout of ["tp2", "pp2"]) {
      const got = loadSafetensors(path.join(dir, `hf_${layout}`, "model.safetensors")).tensors;
      expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
      for (const [name, t] of Object.entries(ref)) {
        expect(got[name]!.shape, name).toEqual(t.shape);
        expect(maxAbsDiff(got[name]!.values(), t.values()), `${layout} ${name}`).toBeLessThan(1e-5);
      }
    }
  });

  it.skipIf(!withTorch)(
    "gives PyTorch's logits (torch_llama.py hf-logits) within 1e-4",
    async () => {
      for (const layout of ["tp1", "tp2", "pp2"]) {
        const hf = path.join(dir, `hf_${layout}`);
        const diff = maxAbsDiff(await ourLogits(hf), torchLogits(hf));
        console.log(`export ${layout}: max |logit - torch| = ${diff.toExponential(2)}`);
        expect(diff).toBeLessThan(1e-4);
      }
    },
    60_000,
  );

  it("the CLI exports a save_dir's newest checkpoint, with the tokenizer files of --tokenizer", () => {
    const tok = path.join(dir, "tok");
    fs.mkdirSync(tok);
    fs.writeFileSync(path.join(tok, "tokenizer.json"), "{}");
    fs.writeFileSync(path.join(tok, "tokenizer_config.json"), "{}");
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", CLI, "--checkpoint=tp2", "--out=hf_cli", "--tokenizer=tok"],
      { cwd: ROOT, env: { ...plainEnv(), INIT_CWD: dir }, encoding: "utf8" },
    );
    expect(out).toMatch(/step_000002/);
    expect(fs.readdirSync(path.join(dir, "hf_cli")).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const a = fs.readFileSync(path.join(dir, "hf_cli", "model.safetensors"));
    expect(a.equals(fs.readFileSync(path.join(dir, "hf_tp2", "model.safetensors")))).toBe(true);
  }, 30_000);

  it("round trip: --init_from_pretrained trains on from the export", async () => {
    const flags = TINY.filter((f) => !f.startsWith("--max_tokens"));
    const out = await train(STEP4, [
      ...flags,
      "--max_tokens=64",
      "--init_from_pretrained",
      "--model_name=hf_tp1",
      "--runs_dir=runs_rt",
    ]);
    // the same first batch as the tp 1 run's first step, but the exported model has trained on it
    const loss = firstLoss(out);
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(freshLoss - 0.05);
  }, 60_000);
});
