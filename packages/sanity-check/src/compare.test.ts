import { describe, expect, it } from "vitest";
import { compareWithBaseline, formatTable, type CompareInput } from "./compare.ts";
import type { MetricsRow } from "./metrics.ts";

function rows(losses: number[], tokensPerSecond = [100, 200, 300, 400]): MetricsRow[] {
  return losses.map((loss, i) => ({
    step: i + 1,
    loss,
    lr: 1e-3,
    trained_tokens: (i + 1) * 256,
    tokens_per_s: tokensPerSecond[i % tokensPerSecond.length]!,
    tokens_per_s_per_rank: null,
    mfu: null,
    rss_bytes: null,
    grad_norm: null,
    step_s: null,
  }));
}

const baseline = rows([5, 4.5, 4.2, 4]);
const input = (metrics: MetricsRow[] | Error, tolerance = 1e-3): CompareInput => ({
  name: "tp2",
  stepDir: "step4_tensor_parallel",
  ranks: 2,
  tolerance,
  metrics,
});

describe("compareWithBaseline", () => {
  it("passes an identical curve with Δ = 0, even at tolerance 0", () => {
    const c = compareWithBaseline(input(rows([5, 4.5, 4.2, 4]), 0), baseline, 4);
    expect(c).toMatchObject({ pass: true, maxDiff: 0, steps: 4, reason: "" });
    expect(c.diffs).toEqual([0, 0, 0, 0]);
  });

  it("takes the largest |Δloss| over the steps and fails it above the tolerance", () => {
    const close = compareWithBaseline(input(rows([5, 4.5 + 4e-4, 4.2 - 9e-4, 4])), baseline, 4);
    expect(close.pass).toBe(true);
    expect(close.maxDiff).toBeCloseTo(9e-4, 12);
    const far = compareWithBaseline(input(rows([5, 4.5, 4.2 + 2e-3, 4])), baseline, 4);
    expect(far.pass).toBe(false);
    expect(far.reason).toBe("|Δloss| 2.00e-3 at step 3 > 0.001");
    // a tighter tolerance set by the layout
    expect(compareWithBaseline(input(rows([5, 4.5 + 1e-6, 4.2, 4]), 1e-7), baseline, 4).pass).toBe(false);
  });

  it("fails a run with fewer steps, even if those it has match", () => {
    const c = compareWithBaseline(input(rows([5, 4.5])), baseline, 4);
    expect(c).toMatchObject({ pass: false, steps: 2, maxDiff: 0 });
    expect(c.reason).toBe("logged 2 steps, expected 4");
  });

  it("fails steps out of order and a loss that is NaN", () => {
    const shuffled = rows([5, 4.5, 4.2, 4]);
    shuffled[2]!.step = 7;
    expect(compareWithBaseline(input(shuffled), baseline, 4).reason).toBe("line 3 is step 7, expected 3");
    const nan = compareWithBaseline(input(rows([5, NaN, 4.2, 4])), baseline, 4);
    expect(nan.pass).toBe(false);
    expect(nan.reason).toBe("loss is not a number");
  });

  it("fails a run that crashed, with its error as the reason", () => {
    const c = compareWithBaseline(input(new Error("train exited with 1")), baseline, 4);
    expect(c).toMatchObject({ pass: false, steps: 0, reason: "train exited with 1" });
    expect(c.maxDiff).toBeNaN();
  });

  it("reports the median tokens/s without the first (warm-up) step", () => {
    expect(
      compareWithBaseline(input(rows([5, 4.5, 4.2, 4], [1, 300, 100, 200])), baseline, 4).tokensPerSecond,
    ).toBe(200);
  });
});

describe("formatTable", () => {
  it("prints one aligned row per run and the reason under a failure", () => {
    const text = formatTable([
      compareWithBaseline({ ...input(baseline, 0), name: "baseline", ranks: 1 }, baseline, 4),
      compareWithBaseline(input(rows([5, 4.5, 4.3, 4])), baseline, 4),
    ]);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(
      /^layout\s+step\s+ranks\s+steps\s+max \|Δloss\|\s+tolerance\s+result\s+tokens\/s$/,
    );
    expect(lines[2]).toMatch(/^baseline\s+step4_tensor_parallel\s+1\s+4\s+0\s+0 \(bitwise\)\s+pass\s+300$/);
    expect(lines[3]).toMatch(/^tp2\s+step4_tensor_parallel\s+2\s+4\s+1\.00e-1\s+0\.001\s+FAIL\s+300$/);
    expect(lines[4]).toBe("    tp2: |Δloss| 1.00e-1 at step 3 > 0.001");
    // the columns line up: every row is as wide as the rule under the header
    expect(lines[2]!.length).toBeLessThanOrEqual(lines[1]!.length);
  });
});
