import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Generator, tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";
import { get_cos_sin, Llama, lossFn } from "./model.ts";
import { randint } from "./utils.ts";

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

describe("Llama", () => {
  it("has picotron's parameter names and count", () => {
    const model = new Llama(tiny);
    const names = model.namedParameters().map(([n]) => n);
    expect(names.slice(0, 4)).toEqual([
      "embedding.weight",
      "decoder_layers.0.input_layernorm.weight",
      "decoder_layers.0.post_attention_layernorm.weight",
      "decoder_layers.0.attention.q_proj.weight",
    ]);
    expect(names.at(-1)).toBe("final_proj.weight");
    const perLayer = 2 * 32 + 32 * 32 * 2 + 2 * 32 * 16 + 3 * 32 * 48;
    expect(model.numParameters()).toBe(2 * 64 * 32 + 2 * perLayer + 32);
  });

  it("is causal: changing a later token does not change earlier logits", () => {
    const model = new Llama(tiny).initWeights(0);
    const a = randint(new Generator(1), 64, [1, 8]);
    const b = a.clone();
    b.storage[7] = (b.storage[7]! + 1) % 64;
    const la = model.forward(a).toArray();
    const lb = model.forward(b).toArray();
    expect(la.slice(0, 7 * 64)).toEqual(lb.slice(0, 7 * 64));
    expect(la.slice(7 * 64)).not.toEqual(lb.slice(7 * 64));
  });

  it("learns: a few AdamW steps on one batch drive its loss down", async () => {
    const { optim } = await import("@picotron/tensor");
    const model = new Llama(tiny).initWeights(0);
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
    const ids = randint(new Generator(2), 64, [2, 9]);
    const input = ids.narrow(1, 0, 8).contiguous();
    const target = ids.narrow(1, 1, 8).contiguous();
    const losses: number[] = [];
    for (let i = 0; i < 10; i++) {
      opt.zeroGrad();
      const loss = lossFn(model.forward(input), target);
      loss.backward();
      opt.step();
      losses.push(loss.item());
    }
    expect(losses[0]).toBeCloseTo(Math.log(64), 0);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 1);
  });

  it("rejects configs whose heads do not divide", () => {
    expect(() => new Llama({ ...tiny, num_attention_heads: 5 })).toThrow(
      /not divisible by --num_attention_heads 5/,
    );
    expect(() => new Llama({ ...tiny, num_key_value_heads: 3 })).toThrow(
      /not divisible by --num_key_value_heads 3/,
    );
    // a model that cannot fit is refused before it is allocated, with the memory it needs
    expect(() => new Llama({ ...tiny, hidden_size: 1_000_000 })).toThrow(
      /the model needs \d+\.\d GB .* more than this machine's .* lower --hidden_size/,
    );
    expect(() => new Llama(tiny).forward(tensor(new Array(17).fill(1), [1, 17], "int32"))).toThrow(
      /exceeds max_position_embeddings 16/,
    );
  });

  it("RoPE tables: position 0 is the identity, angles follow base^(-2i/d)", () => {
    const [cos, sin] = get_cos_sin(3, 4, 10000);
    expect(cos.toArray().slice(0, 4)).toEqual([1, 1, 1, 1]);
    expect(sin.toArray()[4]).toBeCloseTo(Math.sin(1), 6);
    expect(sin.toArray()[5]).toBeCloseTo(Math.sin(0.01), 6);
    expect(sin.toArray()[6]).toBeCloseTo(Math.sin(1), 6);
  });
});

describe("train.ts", () => {
  const run = (...flags: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "train.ts"), ...flags], {
      encoding: "utf8",
    });
  it("takes one step of a small model and prints the loss", () => {
    const r = run(
      "--model_name",
      "SmolLM-135M",
      "--num_hidden_layers",
      "1",
      "--num_attention_heads",
      "9",
      "--num_key_value_heads",
      "3",
      "--seq_len",
      "8",
    );
    expect(r.stderr).toBe("");
    const loss = Number(/Loss: (\d+\.\d{4})\n/.exec(r.stdout)?.[1]);
    expect(Math.abs(loss - Math.log(49152))).toBeLessThan(1.5); // near ln(vocab) at initialization
  });
  it("rejects bad flags before any work", () => {
    const r = run("--seq_len", "0");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--seq_len must be a positive integer, got 0/);
    expect(run("--no_such_flag", "1").stderr).toMatch(/Unknown argument/);
  });
});
