// Export a checkpoint of any layout to a Hugging Face Llama folder (what LlamaForCausalLM.save_pretrained
// writes): config.json, model.safetensors with HF names, and the tokenizer's files when given.
//
// A checkpoint holds one file per (tp, pp) shard: a pipeline stage's file has only its layers (with their
// whole-model names), and a tensor-parallel file a slice of each weight matrix, cut as tensor_parallel.ts
// cuts it. Reassembling is the inverse: union the stages, concatenate the tp slices in tp-rank order.
import fs from "node:fs";
import path from "node:path";
import { loadSafetensors, saveSafetensors, Tensor } from "@picotron/tensor";
import { CheckpointError } from "./index.ts";

/** The fingerprint's model config (the LlamaConfig the run trained). */
interface ModelConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
}

/** The files a Hugging Face tokenizer folder holds (tokenizer.json is the one that must be there). */
export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

/**
 * How tensor parallelism cuts a weight: 0 = by rows (column-parallel q/k/v/gate/up, final_proj, and the
 * vocabulary-parallel embedding), 1 = by columns (row-parallel out_proj/down_proj), null = replicated (norms).
 */
function tpDim(name: string): 0 | 1 | null {
  if (/\.(out_proj|down_proj)\.weight$/.test(name)) return 1;
  if (/norm\.weight$/.test(name)) return null;
  return 0;
}

/** The tutorial's parameter names -> Hugging Face Llama's (the inverse of hfToPicotron). */
export function picotronToHf(name: string): string {
  const layer = /^decoder_layers\.(\d+)\.(.+)$/.exec(name);
  if (layer) {
    const [, i, rest] = layer;
    const mapped = rest!
      .replace(/^attention\.out_proj/, "self_attn.o_proj")
      .replace(/^attention\./, "self_attn.");
    return `model.layers.${i}.${mapped}`;
  }
  const top: Record<string, string> = {
    "embedding.weight": "model.embed_tokens.weight",
    "final_norm.weight": "model.norm.weight",
    "final_proj.weight": "lm_head.weight",
  };
  const hf = top[name];
  if (!hf) throw new CheckpointError(`unknown parameter ${name}: not a picotron Llama checkpoint`);
  return hf;
}

/** Side by side along `dim` (0 or 1) of 2-D tensors, in the given order. */
function concat(parts: Tensor[], dim: 0 | 1): Tensor {
  const [rows, cols] = parts[0]!.shape as [number, number];
  if (dim === 0) {
    const out = new Float32Array(rows * cols * parts.length);
    parts.forEach((p, r) => out.set(p.values() as Float32Array, r * rows * cols));
    return new Tensor(out, [rows * parts.length, cols]);
  }
  const width = cols * parts.length;
  const out = new Float32Array(rows * width);
  parts.forEach((p, r) => {
    const v = p.values() as Float32Array;
    for (let i = 0; i < rows; i++) out.set(v.subarray(i * cols, (i + 1) * cols), i * width + r * cols);
  });
  return new Tensor(out, [rows, width]);
}

/** The whole model's expected shape of each parameter, to check the reassembly against the config. */
function expectedShapes(c: ModelConfig): Record<string, number[]> {
  const head_dim = c.hidden_size / c.num_attention_heads;
  const kv = c.num_key_value_heads * head_dim;
  const h = c.hidden_size;
  const shapes: Record<string, number[]> = {
    "embedding.weight": [c.vocab_size, h],
    "final_norm.weight": [h],
    "final_proj.weight": [c.vocab_size, h],
  };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `decoder_layers.${i}.`;
    Object.assign(shapes, {
      [`${p}attention.q_proj.weight`]: [h, h],
      [`${p}attention.k_proj.weight`]: [kv, h],
      [`${p}attention.v_proj.weight`]: [kv, h],
      [`${p}attention.out_proj.weight`]: [h, h],
      [`${p}mlp.gate_proj.weight`]: [c.intermediate_size, h],
      [`${p}mlp.up_proj.weight`]: [c.intermediate_size, h],
      [`${p}mlp.down_proj.weight`]: [h, c.intermediate_size],
      [`${p}input_layernorm.weight`]: [h],
      [`${p}post_attention_layernorm.weight`]: [h],
    });
  }
  return shapes;
}

/** The checkpoint's model config (its fingerprint's): what every layout of the same model shares. */
function checkpointConfig(checkpoint: string): ModelConfig {
  const stateFile = path.join(checkpoint, "state.json");
  if (!fs.existsSync(stateFile))
    throw new CheckpointError(`${checkpoint}: not a checkpoint (no state.json: incomplete or foreign)`);
  const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as {
    fingerprint?: { model?: ModelConfig };
  };
  const config = state.fingerprint?.model;
  if (!config || typeof config.hidden_size !== "number")
    throw new CheckpointError(
      `${stateFile}: no model config in its fingerprint: not a picotron-ts checkpoint`,
    );
  return config;
}

/** The `kind` files of a checkpoint as shards[pp][tp]: the layout is read off the files (dp and cp replicas write none). */
function shardFiles(checkpoint: string, kind: "model" | "optimizer"): string[][] {
  const pattern = new RegExp(`^${kind}_tp(\\d+)_pp(\\d+)\\.safetensors$`);
  const shards: string[][] = [];
  for (const f of fs.readdirSync(checkpoint)) {
    const m = pattern.exec(f);
    if (m) (shards[Number(m[2])] ??= [])[Number(m[1])] = path.join(checkpoint, f);
  }
  const tp = shards[0]?.length ?? 0;
  if (tp === 0) throw new CheckpointError(`${checkpoint}: no ${kind}_tp*_pp*.safetensors files`);
  for (let p = 0; p < shards.length; p++) {
    for (let t = 0; t < tp; t++) {
      if (!shards[p]?.[t])
        throw new CheckpointError(`${checkpoint}: ${kind}_tp${t}_pp${p}.safetensors is missing`);
    }
  }
  return shards;
}

/** Whole tensors from one pipeline stage's tp slices (each slice: name -> tensor), by the parameter they belong to. */
function joinStage(checkpoint: string, files: Record<string, Tensor>[], param: (name: string) => string) {
  const whole: Record<string, Tensor> = {};
  for (const name of Object.keys(files[0]!)) {
    const parts = files.map((w, t) => {
      const x = w[name];
      if (!x) throw new CheckpointError(`${checkpoint}: ${name} missing from tp rank ${t}'s shard`);
      return x;
    });
    const dim = tpDim(param(name));
    whole[name] = dim === null || files.length === 1 ? parts[0]! : concat(parts, dim);
  }
  return whole;
}

/**
 * The checkpoint's whole optimizer state: each parameter's moments as whole tensors named
 * `{parameter}.exp_avg` / `.exp_avg_sq`, and the step count. A shard's optimizer file numbers its moments
 * (`state.{i}`) in the order of its model file's tensors (both come from the same model's parameters()),
 * and a moment is cut like its parameter: the same join applies.
 */
export function loadWholeOptimizer(checkpoint: string): { step: number; moments: Record<string, Tensor> } {
  const models = shardFiles(checkpoint, "model");
  const optimizers = shardFiles(checkpoint, "optimizer");
  if (optimizers.length !== models.length || optimizers[0]!.length !== models[0]!.length)
    throw new CheckpointError(`${checkpoint}: its optimizer files do not match its model files`);
  const moments: Record<string, Tensor> = {};
  let step = -1;
  optimizers.forEach((stage, p) => {
    const files = stage.map((f, t) => {
      const opt = loadSafetensors(f);
      const names = Object.keys(loadSafetensors(models[p]![t]!).tensors);
      if (Object.keys(opt.tensors).length !== 2 * names.length)
        throw new CheckpointError(
          `${f}: ${Object.keys(opt.tensors).length} moments for ${names.length} parameters`,
        );
      step = Number(opt.metadata.step);
      const named: Record<string, Tensor> = {};
      names.forEach((name, i) => {
        for (const key of ["exp_avg", "exp_avg_sq"]) {
          const m = opt.tensors[`state.${i}.${key}`];
          if (!m) throw new CheckpointError(`${f}: state.${i}.${key} is missing`);
          named[`${name}.${key}`] = m;
        }
      });
      return named;
    });
    Object.assign(
      moments,
      joinStage(checkpoint, files, (n) => n.replace(/\.exp_avg(_sq)?$/, "")),
    );
  });
  if (!Number.isInteger(step) || step < 0)
    throw new CheckpointError(`${checkpoint}: the optimizer files have no step count`);
  return { step, moments };
}

/** The whole tensors of a checkpoint's model files: the stages unioned, the tp slices joined. */
export function joinModelShards(checkpoint: string): Record<string, Tensor> {
  const weights: Record<string, Tensor> = {};
  for (const stage of shardFiles(checkpoint, "model"))
    Object.assign(
      weights,
      joinStage(
        checkpoint,
        stage.map((f) => loadSafetensors(f).tensors),
        (n) => n,
      ),
    );
  return weights;
}

/** The checkpoint's whole model, tutorial names, from its (tp, pp) shards; and its model config. */
export function loadWholeModel(checkpoint: string): { config: ModelConfig; weights: Record<string, Tensor> } {
  const config = checkpointConfig(checkpoint);
  const want = expectedShapes(config);
  const weights = joinModelShards(checkpoint);
  for (const [name, whole] of Object.entries(weights)) {
    const expected = want[name];
    if (!expected || expected.join() !== whole.shape.join())
      throw new CheckpointError(
        `${checkpoint}: ${name} reassembles to [${whole.shape}], the config says [${expected ?? "no such parameter"}]`,
      );
  }
  const missing = Object.keys(want).filter((n) => !(n in weights));
  if (missing.length) throw new CheckpointError(`${checkpoint}: no shard holds ${missing.join(", ")}`);
  return { config, weights };
}

/** The config.json LlamaForCausalLM reads (the padded vocabulary: the embedding's rows). */
export function hfConfig(c: ModelConfig): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.hidden_size / c.num_attention_heads,
    hidden_act: "silu",
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    rope_scaling: null,
    max_position_embeddings: c.max_position_embeddings,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    tie_word_embeddings: false, // the tutorial's final_proj is its own matrix
    torch_dtype: "float32",
  };
}

/**
 * Writes the checkpoint's model as a Hugging Face Llama folder `out`; with `tokenizer` (a folder holding
 * tokenizer.json), copies its tokenizer files too. Returns the files written.
 */
export function exportToHf(checkpoint: string, out: string, tokenizer?: string): string[] {
  if (tokenizer && !fs.existsSync(path.join(tokenizer, "tokenizer.json")))
    throw new CheckpointError(`--tokenizer ${tokenizer}: expected a folder holding tokenizer.json`);
  const { config, weights } = loadWholeModel(checkpoint);
  fs.mkdirSync(out, { recursive: true });
  const hf: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(weights)) hf[picotronToHf(name)] = t;
  const written = ["config.json", "model.safetensors"];
  fs.writeFileSync(path.join(out, "config.json"), JSON.stringify(hfConfig(config), null, 2) + "\n");
  saveSafetensors(path.join(out, "model.safetensors"), hf, { format: "pt" });
  if (tokenizer) {
    for (const f of TOKENIZER_FILES) {
      if (!fs.existsSync(path.join(tokenizer, f))) continue;
      fs.copyFileSync(path.join(tokenizer, f), path.join(out, f));
      written.push(f);
    }
  }
  return written;
}
