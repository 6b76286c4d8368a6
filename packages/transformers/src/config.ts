// Model configs (the tutorial's AutoConfig.from_pretrained): a built-in preset for every model name the
// tutorial uses, a local directory with a config.json, or any hub id through @huggingface/transformers.
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "@picotron/argparse";
import { userCwd } from "@picotron/datasets";

/** The Hugging Face Llama config keys the model reads. */
export interface LlamaConfig {
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

const smol = { vocab_size: 49152, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048 };
const llama32k = { vocab_size: 32000, rms_norm_eps: 1e-5, rope_theta: 10000 };

// Published config.json values of the models the tutorial names.
const SMOL_135M = {
  ...smol,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
};
const SMOL_360M = {
  ...smol,
  hidden_size: 960,
  intermediate_size: 2560,
  num_hidden_layers: 32,
  num_attention_heads: 15,
  num_key_value_heads: 5,
};
const SMOL_1_7B = {
  ...smol,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 24,
  num_attention_heads: 32,
  num_key_value_heads: 32,
};

export const PRESETS: Record<string, LlamaConfig> = {
  "HuggingFaceTB/SmolLM-135M": SMOL_135M,
  "HuggingFaceTB/SmolLM-135M-Instruct": SMOL_135M,
  "HuggingFaceTB/SmolLM-360M": SMOL_360M,
  "HuggingFaceTB/SmolLM-360M-Instruct": SMOL_360M,
  "HuggingFaceTB/SmolLM-1.7B": SMOL_1_7B,
  "HuggingFaceTB/SmolLM-1.7B-Instruct": SMOL_1_7B,
  "TinyLlama/TinyLlama_v1.1": {
    ...llama32k,
    hidden_size: 2048,
    intermediate_size: 5632,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    max_position_embeddings: 2048,
  },
  "meta-llama/Llama-2-7b-hf": {
    ...llama32k,
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    max_position_embeddings: 4096,
  },
};

function findPreset(name: string): LlamaConfig | undefined {
  // "SmolLM-360M-Instruct" works as well as "HuggingFaceTB/SmolLM-360M-Instruct"
  const key = Object.keys(PRESETS).find((k) => k === name || k.split("/")[1] === name);
  return key ? { ...PRESETS[key]! } : undefined;
}

const REQUIRED: (keyof LlamaConfig)[] = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
];

/** Picks the Llama keys out of an HF config object, with HF's defaults for optional ones. */
export function fromHfConfig(raw: Record<string, unknown>, source: string): LlamaConfig {
  for (const k of REQUIRED) {
    if (typeof raw[k] !== "number")
      throw new Error(`${source}: config has no numeric "${k}" (is it a Llama config?)`);
  }
  const num = (k: string, dflt: number) => (typeof raw[k] === "number" ? (raw[k] as number) : dflt);
  return {
    vocab_size: raw.vocab_size as number,
    hidden_size: raw.hidden_size as number,
    intermediate_size: raw.intermediate_size as number,
    num_hidden_layers: raw.num_hidden_layers as number,
    num_attention_heads: raw.num_attention_heads as number,
    num_key_value_heads: num("num_key_value_heads", raw.num_attention_heads as number),
    rms_norm_eps: num("rms_norm_eps", 1e-6),
    rope_theta: num("rope_theta", 10000),
    max_position_embeddings: num("max_position_embeddings", 2048),
  };
}

/**
 * AutoConfig.from_pretrained(name): preset, local directory (relative to `cwd`, the user's folder by
 * default), or hub id (when the hub is reachable). `pretrained`: only a local directory will do.
 */
export async function loadConfig(
  name: string,
  { cwd = userCwd(), pretrained = false }: { cwd?: string; pretrained?: boolean } = {},
): Promise<LlamaConfig> {
  const dir = path.resolve(cwd, name);
  // pretrained weights come from a local HF folder, so its config must be there too (not a preset's)
  if (pretrained && !fs.existsSync(path.join(dir, "config.json")))
    throw new UsageError(
      `--init_from_pretrained needs --model_name to be a local HF Llama directory; ${dir} has no config.json`,
    );
  const preset = pretrained ? undefined : findPreset(name);
  if (preset) return preset;
  if (fs.existsSync(dir) && fs.statSync(dir).isDirectory()) {
    const file = path.join(dir, "config.json");
    if (!fs.existsSync(file)) throw new Error(`${dir}: the directory has no config.json`);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
    }
    return fromHfConfig(raw, file);
  }
  try {
    const { AutoConfig } = await import("@huggingface/transformers");
    const cfg = await AutoConfig.from_pretrained(name);
    return fromHfConfig(cfg as unknown as Record<string, unknown>, name);
  } catch (err) {
    throw new Error(
      `unknown model "${name}": not a built-in preset, not a local directory with config.json, and the hub ` +
        `could not provide it (${(err as Error).message.split("\n")[0]}).\nBuilt-in presets: ${Object.keys(PRESETS).join(", ")}`,
    );
  }
}
