// The collective timeout: a rank stopped by SIGSTOP leaves its peers waiting; after the
// timeout they say what they wait for and whom, and the job ends (no rank is left behind).
import { hostname } from "node:os";
import { beforeAll, describe, expect, test } from "vitest";
import { checkTimeout, timeoutFromEnv } from "../src/timeout.ts";
import { report, requireMpirun, runWorkers } from "./helpers.ts";

const host = hostname();

/** A stall job on `ranks` ranks with PICOTRON_COLLECTIVE_TIMEOUT=timeout. */
function stall(ranks: number, mode: string, timeout: string, extra: string[] = []) {
  return runWorkers(ranks, "stall.ts", [mode, ...extra], [], { PICOTRON_COLLECTIVE_TIMEOUT: timeout });
}

describe("settings", () => {
  test("seconds from PICOTRON_COLLECTIVE_TIMEOUT, 300 when unset, one-line errors otherwise", () => {
    expect(timeoutFromEnv({})).toBe(300);
    expect(timeoutFromEnv({ PICOTRON_COLLECTIVE_TIMEOUT: "2.5" })).toBe(2.5);
    expect(timeoutFromEnv({ PICOTRON_COLLECTIVE_TIMEOUT: "0" })).toBe(0);
    expect(() => timeoutFromEnv({ PICOTRON_COLLECTIVE_TIMEOUT: "soon" })).toThrow(
      "PICOTRON_COLLECTIVE_TIMEOUT ('soon') must be a number of seconds >= 0 (0: no timeout), got NaN",
    );
    expect(() => checkTimeout(-1, "--collective_timeout")).toThrow(RangeError);
    expect(() => checkTimeout("5", "--collective_timeout")).toThrow("got 5");
  });
});

describe("a stalled rank", () => {
  beforeAll(requireMpirun);

  // Each job waits 2 s for a rank that never comes; under load the job may take longer to
  // start and end, which the 60 s limit of run() leaves room for.
  test("its peers in an allreduce name the wait and the ranks, and the job ends", () => {
    const outcome = stall(3, "allreduce", "2");
    expect(outcome.code, report(outcome)).not.toBe(0);
    expect(outcome.stdout).toContain("timeout 2");
    // Ranks 0 and 2 both wait; whichever reports first ends the job.
    const match =
      /\[rank (\d) on (\S+)\] collective timeout: allreduce has waited ([\d.]+) s for any of ranks (.*) \(limit 2 s, PICOTRON_COLLECTIVE_TIMEOUT\); ending the job/.exec(
        outcome.stderr,
      );
    expect(match, report(outcome)).not.toBeNull();
    const [, rank, where, waited, peers] = match!;
    expect(where).toBe(host);
    expect(Number(waited)).toBeGreaterThanOrEqual(2);
    expect(peers).toBe(rank === "0" ? `1 on ${host}, 2 on ${host}` : `0 on ${host}, 1 on ${host}`);
  });

  test("a pipeline receive names its one peer, through recv and through irecv + wait", () => {
    for (const mode of ["recv", "irecv"]) {
      const outcome = stall(2, mode, "1.5");
      expect(outcome.code, report(outcome)).not.toBe(0);
      const operation = mode === "recv" ? "recv" : "wait \\(irecv\\)";
      expect(outcome.stderr).toMatch(
        new RegExp(
          `\\[rank 0 on ${host}\\] collective timeout: ${operation} has waited [\\d.]+ s for rank 1 on ${host} \\(limit 1.5 s`,
        ),
      );
    }
  });

  test("a ring step's waitAll names both of its peers", () => {
    const outcome = stall(3, "ring", "1.5");
    expect(outcome.code, report(outcome)).not.toBe(0);
    expect(outcome.stderr).toMatch(
      new RegExp(
        `\\[rank 0 on ${host}\\] collective timeout: waitAll has waited [\\d.]+ s for ranks 2 on ${host}, 1 on ${host} \\(`,
      ),
    );
  });

  test("setCollectiveTimeout overrides the environment", () => {
    const outcome = stall(2, "api", "0", ["1"]);
    expect(outcome.code, report(outcome)).not.toBe(0);
    expect(outcome.stdout).toContain("timeout 1");
    expect(outcome.stderr).toContain("collective timeout: allreduce has waited");
  });

  test("a slow rank within the timeout is not reported", () => {
    const outcome = stall(2, "quick", "20");
    expect(outcome.code, report(outcome)).toBe(0);
    expect(outcome.stdout).toContain("done");
    expect(outcome.stderr).toBe("");
  });
});
