import { spawnSync } from "node:child_process";
import path from "node:path";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { Tensor } from "@picotron/tensor";
import { describe, expect, it } from "vitest";
import { assignBuckets, bucketSizeFromCap } from "./data_parallel.ts";

interface Report {
  rank: number;
  dp: number;
  gradDiff: number;
  gradScale: number;
  weightDiff: number;
  localAfterUnsynced: boolean;
  hash: number;
  sizes: number[];
  buckets: number[][];
  timelines: { launched: number; completed: number; by: "test" | "wait" | null }[][];
  misuse: string;
}

// 0.01 MiB = 2621 float32 elements: the tiny model's 21 parameters (22.6K elements) fill about 12 buckets
const CAP_MB = 0.01;

/** Runs the worker as a user runs a step: plain node, the launcher starts mpirun itself. */
function runWorker(dp: number): Report[] {
  const env = plainEnv();
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(import.meta.dirname, "data_parallel.worker.ts"),
      String(dp),
      String(CAP_MB),
    ],
    { encoding: "utf8", env, timeout: 90_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Report)
    .sort((a, b) => a.rank - b.rank);
}

const param = (numel: number) => new Tensor(new Float32Array(numel), [numel]);

describe("bucket assignment", () => {
  it("fills buckets in order up to the cap; a parameter larger than the cap gets its own", () => {
    const params = [3, 4, 2, 9, 1, 1, 5].map(param);
    const buckets = assignBuckets(params, 6);
    expect(buckets.map((b) => b.map((p) => p.numel))).toEqual([[3], [4, 2], [9], [1, 1], [5]]);
    expect(buckets.flat()).toEqual(params);
    expect(assignBuckets(params, 100)).toEqual([params]);
  });

  it("turns --bucket_cap_mb into float32 elements, and refuses a cap that is not positive", () => {
    expect(bucketSizeFromCap(25)).toBe((25 * 1024 * 1024) / 4);
    expect(bucketSizeFromCap(1e-9)).toBe(1);
    for (const bad of [0, -1, NaN, Infinity]) {
      expect(() => bucketSizeFromCap(bad)).toThrow(/--bucket_cap_mb must be a positive number/);
    }
  });
});

describe("DataParallelBucket (mpirun)", () => {
  for (const dp of [2, 4]) {
    it(`dp=${dp}: gradients and weights equal the 1-rank run on the whole global batch; replicas stay bitwise equal; all-reduces overlap the backward pass`, () => {
      const reports = runWorker(dp);
      expect(reports.map((r) => r.rank)).toEqual([...Array(dp).keys()]);
      for (const r of reports) {
        expect(r.dp).toBe(dp);
        expect(r.gradScale, "all-zero gradients would prove nothing").toBeGreaterThan(0);
        // the same sums taken in another order: float32 rounding only
        expect(r.gradDiff).toBeLessThanOrEqual(1e-5 * Math.max(1, r.gradScale));
        expect(r.weightDiff).toBeLessThanOrEqual(1e-4);
        expect(
          r.localAfterUnsynced,
          "a micro-batch without require_backward_grad_sync must not all-reduce",
        ).toBe(true);

        // every parameter in exactly one bucket, last registered first; no bucket over the cap but a lone parameter
        expect(r.buckets.flat()).toEqual([...r.sizes.keys()].reverse());
        expect(r.buckets.length).toBeGreaterThan(4);
        for (const b of r.buckets) {
          const bytes = b.reduce((n, i) => n + r.sizes[i]! * 4, 0);
          if (b.length > 1) expect(bytes).toBeLessThanOrEqual(CAP_MB * 1024 * 1024);
        }

        // every bucket's all-reduce started inside the backward pass (the first one well before its end),
        // and all completed
        for (const timeline of r.timelines) {
          expect(timeline).toHaveLength(r.buckets.length);
          expect(timeline[0]!.launched).toBeLessThan(0);
          for (const t of timeline) {
            expect(t.launched).toBeLessThanOrEqual(0);
            expect(t.by).not.toBeNull();
          }
        }
        expect(r.misuse).toMatch(
          /no longer a view of its gradient bucket: clear gradients with optimizer.zeroGrad\(false\)/,
        );
      }
      expect(new Set(reports.map((r) => r.hash)).size, "replicas differ after the optimizer steps").toBe(1);
      // overlap: some all-reduce was seen complete by a progress call before its rank's backward pass ended
      const overlapped = reports
        .flatMap((r) => r.timelines.flat())
        .filter((t) => t.by === "test" && t.completed < 0);
      expect(overlapped.length).toBeGreaterThan(0);
    });
  }
});
