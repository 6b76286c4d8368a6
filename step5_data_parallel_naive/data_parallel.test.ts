import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

interface Report {
  rank: number;
  dp: number;
  gradDiff: number;
  gradScale: number;
  weightDiff: number;
  localAfterUnsynced: boolean;
  hash: number;
}

/** Runs the worker as a user runs a step: plain node, the launcher starts mpirun itself. */
function runWorker(dp: number): Report[] {
  const env = plainEnv();
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(import.meta.dirname, "data_parallel.worker.ts"), String(dp)],
    { encoding: "utf8", env, timeout: 90_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Report)
    .sort((a, b) => a.rank - b.rank);
}

describe("DataParallelNaive (mpirun)", () => {
  for (const dp of [2, 4]) {
    it(`dp=${dp}: gradients and weights equal the 1-rank run on the whole global batch; replicas stay bitwise equal`, () => {
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
      }
      expect(new Set(reports.map((r) => r.hash)).size, "replicas differ after the optimizer steps").toBe(1);
    });
  }
});
