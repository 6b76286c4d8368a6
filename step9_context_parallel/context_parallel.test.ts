import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

interface Report {
  rank: number;
  cp: number;
  case: string;
  diffs?: Record<string, number>;
  scales?: Record<string, number>;
  error?: string;
}

const runs = new Map<string, Report[]>();

/** Runs the worker (once per layout) as a user runs a step: plain node, the launcher starts mpirun. */
function runWorker(cp: number, tp = 1): Report[] {
  const key = `${cp}x${tp}`;
  if (runs.has(key)) return runs.get(key)!;
  const env = plainEnv();
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(import.meta.dirname, "context_parallel.worker.ts"), String(cp), String(tp)],
    { encoding: "utf8", env, timeout: 90_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  const reports = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Report);
  runs.set(key, reports);
  return reports;
}

describe("ring attention against causal attention on the gathered sequence (mpirun)", () => {
  for (const [cp, tp] of [
    [1, 1],
    [2, 1],
    [4, 1],
    // two rings side by side (world ranks 0, 2 and 1, 3), each on its own data
    [2, 2],
  ] as const) {
    it(`cp=${cp} tp=${tp}: each rank's slice of the output and of dQ, dK, dV (GQA, MHA, large scores)`, () => {
      const reports = runWorker(cp, tp);
      const cases = reports.filter((r) => r.diffs);
      expect(new Set(reports.map((r) => r.rank))).toEqual(new Set([...Array(cp * tp).keys()]));
      expect(cases.length).toBe(3 * cp * tp);
      for (const r of cases) {
        expect(r.cp).toBe(cp);
        expect(Object.keys(r.diffs!).sort()).toEqual(["dk", "dq", "dv", "output"]);
        for (const [what, diff] of Object.entries(r.diffs!)) {
          const scale = r.scales![what]!;
          const label = `rank ${r.rank} ${r.case} ${what}`;
          expect(
            scale,
            `${label}: the reference is all zeros, the comparison would prove nothing`,
          ).toBeGreaterThan(0);
          // the same sums taken block by block: float32 rounding only
          expect(diff, label).toBeLessThanOrEqual(2e-5 * Math.max(1, scale));
        }
      }
    });
  }

  it("refuses slices that do not fit, before any communication", () => {
    const reports = runWorker(2).filter((r) => r.case === "mismatched");
    expect(reports.length).toBe(2);
    for (const r of reports)
      expect(r.error).toMatch(/ring attention: q \[2, 3, 4, 8\], k \[2, 4, 2, 8\].*do not fit/);
  });
});
