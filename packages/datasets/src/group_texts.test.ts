import { describe, expect, it } from "vitest";
import { numChunks, tokenizer_group_text } from "./group_texts.ts";

// one token per character, EOS = 0
const chars = { encode: (s: string) => Int32Array.from(s, (c) => c.charCodeAt(0)), eosId: 0 };

describe("tokenizer_group_text", () => {
  it("numChunks counts the overlapping chunks that fit", () => {
    expect(numChunks(4, 4)).toBe(0);
    expect(numChunks(5, 4)).toBe(1);
    expect(numChunks(8, 4)).toBe(1);
    expect(numChunks(9, 4)).toBe(2);
  });

  it("puts EOS after each document and keeps only the tokens whole chunks use", async () => {
    const seen: number[] = [];
    const stream = await tokenizer_group_text(["ab", "cde"], chars, 2, 1, (done) => seen.push(done));
    // a b EOS c d e EOS = 7 tokens -> (7 - 1) / 2 = 3 chunks -> 3 * 2 + 1 = 7 tokens kept
    expect(Array.from(stream)).toEqual([97, 98, 0, 99, 100, 101, 0]);
    expect(Array.from(await tokenizer_group_text(["ab", "cde"], chars, 4))).toEqual([97, 98, 0, 99, 100]);
    expect(seen).toEqual([1, 2]);
  });

  it("without an EOS the documents are simply concatenated; too few tokens are all kept", async () => {
    expect(Array.from(await tokenizer_group_text(["ab", "c"], { ...chars, eosId: null }, 8))).toEqual([
      97, 98, 99,
    ]);
  });
});
