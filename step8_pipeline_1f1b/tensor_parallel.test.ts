// The layers themselves are step 4's, tested there under mpirun; here only the check the launcher runs.
import { describe, expect, it } from "vitest";
import { PRESETS } from "@picotron/transformers";
import { checkTensorParallel } from "./tensor_parallel.ts";

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
