import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

interface Report {
  rank: number;
  coords: [number, number, number, number];
  tp: number[];
  cp: number[];
  pp: number[];
  dp: number[];
  cp_dp: number[];
  pp_dp: number[];
  ids: { tp: number[]; cp: number[]; pp: number[]; dp: number[]; cp_dp: number[] };
  sizes: number[];
  ring: [number, number];
  neighbours: [number | null, number | null];
  stages: [boolean, boolean];
  name: string;
}

const WORKER = path.join(import.meta.dirname, "process_group_manager.worker.ts");

/** Runs the worker as a user would run a step: plain node, the launcher starts mpirun itself. */
function runGrid(...sizes: number[]) {
  const env = plainEnv();
  return spawnSync(process.execPath, ["--import", "tsx", WORKER, ...sizes.map(String)], {
    encoding: "utf8",
    env,
    timeout: 120_000,
  });
}

describe("ProcessGroupManager with context parallelism", () => {
  for (const [dp, pp, cp, tp] of [
    [1, 1, 1, 1],
    [2, 1, 4, 1],
    [1, 2, 2, 2],
  ] as const) {
    it(`dp=${dp} pp=${pp} cp=${cp} tp=${tp}: every rank's coordinates, groups and ring neighbours match the grid`, () => {
      const r = runGrid(dp, pp, cp, tp);
      expect(r.status, r.stderr).toBe(0);
      const reports: Report[] = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(reports.map((x) => x.rank).sort((a, b) => a - b)).toEqual([...Array(dp * pp * cp * tp).keys()]);
      // the grid, enumerated independently: ranks fill (dp, pp, cp, tp) in row-major order
      const at = new Map<string, number>();
      let next = 0;
      for (let d = 0; d < dp; d++)
        for (let p = 0; p < pp; p++)
          for (let c = 0; c < cp; c++) for (let t = 0; t < tp; t++) at.set(`${d},${p},${c},${t}`, next++);
      const rank = (d: number, p: number, c: number, t: number) => at.get(`${d},${p},${c},${t}`)!;
      const seq = (n: number) => [...Array(n).keys()];
      for (const rep of reports) {
        const [d, p, c, t] = rep.coords;
        expect(rank(d, p, c, t)).toBe(rep.rank);
        expect(rep.tp).toEqual(seq(tp).map((i) => rank(d, p, c, i)));
        expect(rep.cp).toEqual(seq(cp).map((i) => rank(d, p, i, t)));
        expect(rep.pp).toEqual(seq(pp).map((i) => rank(d, i, c, t)));
        expect(rep.dp).toEqual(seq(dp).map((i) => rank(i, p, c, t)));
        // the replicas of one weight shard: every (dp, cp) pair of this (pp, tp)
        expect(rep.cp_dp).toEqual(seq(dp).flatMap((i) => seq(cp).map((j) => rank(i, p, j, t))));
        expect(rep.pp_dp).toEqual(seq(dp).flatMap((i) => seq(pp).map((j) => rank(i, j, c, t))));
        expect(rep.ids).toEqual({ tp: rep.tp, cp: rep.cp, pp: rep.pp, dp: rep.dp, cp_dp: rep.cp_dp });
        expect(rep.sizes).toEqual([dp, pp, cp, tp, dp * cp]);
        // the ring: receive from the previous cp rank, send to the next, the ends joined
        expect(rep.ring).toEqual([rank(d, p, (c - 1 + cp) % cp, t), rank(d, p, (c + 1) % cp, t)]);
        expect(rep.neighbours).toEqual([
          p > 0 ? rank(d, p - 1, c, t) : null,
          p < pp - 1 ? rank(d, p + 1, c, t) : null,
        ]);
        expect(rep.stages).toEqual([p === 0, p === pp - 1]);
        expect(rep.name).toBe(`DP(${dp})-PP(${pp})-CP(${cp})-TP(${tp})-Rank(${rep.rank})`);
      }
    });
  }

  it("refuses a world size that is not dp x pp x cp x tp, before any work", () => {
    const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };
    const r = spawnSync(
      "mpirun",
      ["-n", "3", "--oversubscribe", process.execPath, "--import", "tsx", WORKER, "1", "1", "2", "1"],
      { encoding: "utf8", env, timeout: 60_000 },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/3 ranks, but the configuration needs 2/);
  });
});
