import { spawn } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { distribute_layers } from "./pipeline_parallel.ts";

interface Report {
  run: string;
  rank: number;
  layers: number[];
  names: string[];
  refNames: string[];
  weightsEqual: boolean;
  steps: { loss: number; refLoss: number; maxGradDiff: number; maxGrad: number; peak: number }[];
}

/**
 * Runs the worker as a user runs a step (plain node: the launcher starts mpirun itself), one MPI job per
 * pipeline size for all its runs; returns each run's reports, sorted by rank.
 */
async function runPipelines(pp: number, runs: string[]): Promise<Map<string, Report[]>> {
  const env = plainEnv();
  const worker = path.join(import.meta.dirname, "pipeline_parallel.worker.ts");
  const child = spawn(process.execPath, ["--import", "tsx", worker, String(pp), ...runs], { env });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  expect(code, err).toBe(0);
  const byRun = new Map<string, Report[]>(runs.map((r) => [r, []]));
  for (const line of out.trim().split("\n")) {
    const report = JSON.parse(line) as Report;
    byRun.get(report.run)!.push(report);
  }
  for (const reports of byRun.values()) reports.sort((a, b) => a.rank - b.rank);
  return byRun;
}

/** Every stage matches the 1-rank model: its share of the layers, the same weights, gradients and loss. */
function expectSameAsOneRank(reports: Report[], pp: number, layers: number): void {
  expect(reports).toHaveLength(pp);
  expect(reports.flatMap((r) => r.layers)).toEqual([...Array(layers).keys()]);
  // together the stages hold every parameter of the whole model, under its name, exactly once
  expect(reports.flatMap((r) => r.names).sort()).toEqual([...reports[0]!.refNames].sort());
  for (const r of reports) {
    expect(r.weightsEqual).toBe(true);
    for (const s of r.steps) {
      expect(Math.abs(s.loss - s.refLoss)).toBeLessThan(1e-6);
      expect(s.maxGrad).toBeGreaterThan(0);
      // bitwise equal in practice (the same ops in the same order); the margin only allows for rounding
      expect(s.maxGradDiff).toBeLessThanOrEqual(1e-5 * s.maxGrad);
    }
  }
  expect(reports[0]!.names).toContain("embedding.weight");
  expect(reports.at(-1)!.names).toContain("final_proj.weight");
}

const peaks = (reports: Report[]) => reports.map((r) => r.steps[0]!.peak);

describe("distribute_layers", () => {
  it("gives each stage a contiguous share, the first L % pp stages one more", () => {
    const all = (layers: number, pp: number) =>
      [...Array(pp).keys()].map((p) => distribute_layers(layers, pp, p));
    expect(all(4, 2)).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(all(5, 2)).toEqual([
      [0, 1, 2],
      [3, 4],
    ]);
    expect(all(6, 4)).toEqual([[0, 1], [2, 3], [4], [5]]);
    expect(all(4, 4)).toEqual([[0], [1], [2], [3]]);
  });

  it("refuses more stages than layers, with a clear message", () => {
    expect(() => distribute_layers(3, 4, 0)).toThrow(/--pp_size 4 > num_hidden_layers 3/);
  });
});

describe("pipeline schedules against the 1-rank model", () => {
  let pp2: Map<string, Report[]>;
  let pp4: Map<string, Report[]>;
  beforeAll(async () => {
    pp2 = await runPipelines(2, ["afab:5:4"]);
    pp4 = await runPipelines(4, ["afab:6:2", "afab:4:1", "afab:4:8"]);
  }, 300_000);

  for (const engine of ["afab"]) {
    it(`${engine}, pp 2, 5 layers (uneven: 3 + 2), 4 micro-batches: same loss and gradients`, () => {
      expectSameAsOneRank(pp2.get(`${engine}:5:4`)!, 2, 5);
    });

    it(`${engine}, pp 4, 6 layers (2 + 2 + 1 + 1), 2 micro-batches (fewer than stages): same loss and gradients`, () => {
      expectSameAsOneRank(pp4.get(`${engine}:6:2`)!, 4, 6);
    });

    it(`${engine}, pp 4, 8 micro-batches: same loss and gradients`, () => {
      expectSameAsOneRank(pp4.get(`${engine}:4:8`)!, 4, 4);
    });
  }

  it("peak activation memory: AFAB holds all 8 micro-batches on every stage", () => {
    const one = peaks(pp4.get("afab:4:1")!); // one micro-batch in flight
    const afab = peaks(pp4.get("afab:4:8")!);
    for (let p = 0; p < 4; p++) {
      expect(one[p]).toBeGreaterThan(0);
      expect(afab[p]).toBe(8 * one[p]!);
    }
  });
});
