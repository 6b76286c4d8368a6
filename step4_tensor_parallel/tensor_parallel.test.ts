import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { PRESETS, type LlamaConfig } from "@picotron/transformers";
import { checkTensorParallel } from "./tensor_parallel.ts";

interface Report {
  rank: number;
  tp: number;
  config: LlamaConfig;
  diffs: Record<string, number>;
  scales: Record<string, number>;
  coverage: [number, number];
  numParams: number;
  numParamsTotal: number;
  refNumParams: number;
  shapes: Record<string, number[]>;
  errors: { column: string; row: string; embedding: string; apply: string; applyLeftModel: boolean };
}

const runs = new Map<number, Report[]>();

/** Runs the worker (once per tp) as a user runs a step: plain node, the launcher starts mpirun. */
function runWorker(tp: number): Report[] {
  if (runs.has(tp)) return runs.get(tp)!;
  const env = plainEnv();
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(import.meta.dirname, "tensor_parallel.worker.ts"), String(tp)],
    { encoding: "utf8", env, timeout: 90_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  const reports: Report[] = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  reports.sort((a, b) => a.rank - b.rank);
  runs.set(tp, reports);
  return reports;
}

/** The single-process Llama's parameter count, and the part of it that is norm weights (replicated). */
function llamaParams(c: LlamaConfig): { total: number; norms: number } {
  const h = c.hidden_size;
  const kv = (c.num_key_value_heads * h) / c.num_attention_heads;
  const layer = 2 * h * h + 2 * h * kv + 3 * h * c.intermediate_size;
  const norms = (2 * c.num_hidden_layers + 1) * h;
  return { total: 2 * c.vocab_size * h + c.num_hidden_layers * layer + norms, norms };
}

describe("tensor parallelism against the unsharded layers (mpirun)", () => {
  for (const tp of [2, 4]) {
    it(`tp=${tp}: every layer and a whole Llama give the single-process outputs and gradients`, () => {
      const reports = runWorker(tp);
      expect(reports.map((r) => r.rank)).toEqual([...Array(tp).keys()]);
      for (const r of reports) {
        expect(r.tp).toBe(tp);
        const names = Object.keys(r.diffs);
        for (const kind of ["column", "column_gather", "row"])
          for (const what of ["output", "input_grad", "weight", "weight_grad"])
            expect(names).toContain(`${kind}.${what}`);
        expect(names).toContain("llama.loss");
        expect(names).toContain("llama.grad_norm");
        expect(names.filter((n) => n.startsWith("llama.grad.")).length).toBe(Object.keys(r.shapes).length);
        for (const [name, diff] of Object.entries(r.diffs)) {
          const scale = r.scales[name]!;
          expect(scale, `${name} is all zeros: the comparison would prove nothing`).toBeGreaterThan(0);
          // weights are generated, not computed: each shard is exactly its slice of the master
          if (/^[a-z_]+\.weight$|^llama\.(weight|kept)\./.test(name)) expect(diff, name).toBe(0);
          // sums taken in another order (the all-reduces) differ by float32 rounding only
          else expect(diff, name).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
        }
        expect(r.coverage, "each master element is held by exactly one rank").toEqual([1, 1]);
      }
    });
  }

  for (const tp of [2, 4]) {
    it(`tp=${tp}: each rank holds only its shards (1/tp of every matrix, the norms whole)`, () => {
      for (const r of runWorker(tp)) {
        const c = r.config;
        const { total, norms } = llamaParams(c);
        expect(r.refNumParams).toBe(total);
        expect(r.numParams).toBe((total - norms) / tp + norms);
        expect(r.numParamsTotal, "the count logged and used for MFU").toBe(total);
        const h = c.hidden_size;
        const headDim = h / c.num_attention_heads;
        expect(r.shapes).toMatchObject({
          "embedding.weight": [c.vocab_size / tp, h],
          "decoder_layers.0.attention.q_proj.weight": [(c.num_attention_heads / tp) * headDim, h],
          "decoder_layers.0.attention.k_proj.weight": [(c.num_key_value_heads / tp) * headDim, h],
          "decoder_layers.0.attention.out_proj.weight": [h, h / tp],
          "decoder_layers.0.mlp.gate_proj.weight": [c.intermediate_size / tp, h],
          "decoder_layers.0.mlp.down_proj.weight": [h, c.intermediate_size / tp],
          "decoder_layers.0.input_layernorm.weight": [h],
          "final_proj.weight": [c.vocab_size / tp, h],
        });
      }
    });

    it(`tp=${tp}: sizes that cannot be split are refused before the model is touched`, () => {
      const bad = 2 * tp + 1;
      for (const { errors } of runWorker(tp)) {
        expect(errors.column).toBe(
          `ColumnParallelLinear: out_features ${bad} is not divisible by the tensor parallel size ${tp}`,
        );
        expect(errors.row).toMatch(new RegExp(`^RowParallelLinear: in_features ${bad} is not divisible`));
        expect(errors.embedding).toMatch(
          new RegExp(`^VocabParallelEmbedding: num_embeddings ${bad} is not divisible`),
        );
        expect(errors.apply).toMatch(
          new RegExp(`^--tp_size ${tp}: num_key_value_heads 1 is not divisible by ${tp};`),
        );
        expect(errors.applyLeftModel).toBe(true);
      }
    });
  }
});

describe("checkTensorParallel", () => {
  const smol = PRESETS["HuggingFaceTB/SmolLM-135M"]!; // 9 heads, 3 KV heads, hidden 576, ffn 1536

  it("names exactly the dimensions that tp does not divide", () => {
    // bytes tokenizer: 256 bytes + specials, padded to 320
    expect(() => checkTensorParallel({ ...smol, vocab_size: 320 }, 3)).toThrow(
      /^--tp_size 3: vocab_size \(padded\) 320 is not divisible by 3;/,
    );
    expect(() => checkTensorParallel(smol, 2)).toThrow(
      /^--tp_size 2: num_attention_heads 9, num_key_value_heads 3 are not divisible by 2;/,
    );
    expect(() =>
      checkTensorParallel(
        {
          ...smol,
          num_attention_heads: 12,
          num_key_value_heads: 4,
          intermediate_size: 1538,
          vocab_size: 49154,
        },
        4,
      ),
    ).toThrow(
      /^--tp_size 4: intermediate_size \(ffn\) 1538, vocab_size \(padded\) 49154 are not divisible by 4;/,
    );
  });

  it("accepts the layouts it can split", () => {
    expect(() => checkTensorParallel(smol, 3)).not.toThrow();
    expect(() =>
      checkTensorParallel({ ...smol, num_attention_heads: 12, num_key_value_heads: 4 }, 4),
    ).not.toThrow();
    expect(() => checkTensorParallel(smol, 1)).not.toThrow();
  });
});
