import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

interface Report {
  rank: number;
  coords: [number, number, number];
  tp: number[];
  pp: number[];
  dp: number[];
  pp_dp: number[];
  ids: { tp: number[]; pp: number[]; dp: number[] };
  neighbours: [number | null, number | null];
  stages: [boolean, boolean];
  name: string;
}

/** Runs the worker as a user would run a step: plain node, the launcher starts mpirun itself. */
function runGrid(...sizes: number[]) {
  const env = plainEnv();
  return spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(import.meta.dirname, "process_group_manager.worker.ts"),
      ...sizes.map(String),
    ],
    {
      encoding: "utf8",
      env,
      timeout: 90_000,
    },
  );
}

describe("ProcessGroupManager", () => {
  for (const [dp, pp, tp] of [
    [1, 1, 1],
    [2, 1, 1],
    [1, 2, 2],
    [2, 2, 2],
  ] as const) {
    it(`dp=${dp} pp=${pp} tp=${tp}: every rank's coordinates and groups match the grid`, () => {
      const r = runGrid(dp, pp, tp);
      expect(r.status, r.stderr).toBe(0);
      const reports: Report[] = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(reports.map((x) => x.rank).sort((a, b) => a - b)).toEqual([...Array(dp * pp * tp).keys()]);
      // the grid, enumerated independently: ranks fill (dp, pp, tp) in row-major order
      const at = new Map<string, number>();
      let next = 0;
      for (let d = 0; d < dp; d++)
        for (let p = 0; p < pp; p++) for (let t = 0; t < tp; t++) at.set(`${d},${p},${t}`, next++);
      const rank = (d: number, p: number, t: number) => at.get(`${d},${p},${t}`)!;
      const seq = (n: number) => [...Array(n).keys()];
      for (const rep of reports) {
        const [d, p, t] = rep.coords;
        expect(rank(d, p, t)).toBe(rep.rank);
        expect(rep.tp).toEqual(seq(tp).map((i) => rank(d, p, i)));
        expect(rep.pp).toEqual(seq(pp).map((i) => rank(d, i, t)));
        expect(rep.dp).toEqual(seq(dp).map((i) => rank(i, p, t)));
        expect(rep.pp_dp).toEqual(seq(dp).flatMap((i) => seq(pp).map((j) => rank(i, j, t))));
        expect(rep.ids).toEqual({ tp: rep.tp, pp: rep.pp, dp: rep.dp });
        expect(rep.neighbours).toEqual([
          p > 0 ? rank(d, p - 1, t) : null,
          p < pp - 1 ? rank(d, p + 1, t) : null,
        ]);
        expect(rep.stages).toEqual([p === 0, p === pp - 1]);
        expect(rep.name).toBe(`DP(${dp})-PP(${pp})-TP(${tp})-Rank(${rep.rank})`);
      }
    });
  }

  it("refuses a world size that is not dp x pp x tp, before any work", () => {
    const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };
    const r = spawnSync(
      "mpirun",
      [
        "-n",
        "3",
        "--oversubscribe",
        process.execPath,
        "--import",
        "tsx",
        path.join(import.meta.dirname, "process_group_manager.worker.ts"),
        "2",
        "1",
        "1",
      ],
      { encoding: "utf8", env, timeout: 60_000 },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/3 ranks, but the configuration needs 2/);
  });
});
