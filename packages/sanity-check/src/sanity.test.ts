// The real harness, end to end, on the cheapest layouts: step 3 against itself.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readMetrics } from "./metrics.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-e2e-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `pnpm sanity ...`, as a user types it, with its runs and pictures kept out of the repository. */
function sanity(name: string, ...args: string[]) {
  const runsDir = path.join(dir, name, "runs");
  const assetsDir = path.join(dir, name, "assets");
  const result = spawnSync("pnpm", ["sanity", "--runs_dir", runsDir, "--assets_dir", assetsDir, ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { ...result, output: result.stdout + result.stderr, runsDir, assetsDir };
}

describe("pnpm sanity", () => {
  it("trains the baseline twice in quick mode and finds them bitwise equal", () => {
    const run = sanity("rerun", "--quick", "--only", "^baseline_rerun$");
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/^baseline\s+step3_\w+\s+1\s+20\s+0\s+0\.001\s+pass/m);
    expect(run.output).toMatch(/^baseline_rerun\s+step3_\w+\s+1\s+20\s+0\s+0 \(bitwise\)\s+pass/m);
    expect(run.output).toContain("all 2 match the baseline");

    const losses = (name: string) =>
      readMetrics(path.join(run.runsDir, name, "metrics.jsonl")).map((r) => r.loss);
    const baseline = losses("baseline");
    expect(baseline).toHaveLength(20);
    expect(losses("baseline_rerun")).toEqual(baseline);
    // it did learn: the shared config is a real training run, not a flat line
    expect(baseline[19]!).toBeLessThan(baseline[0]! - 0.5);

    const config = JSON.parse(fs.readFileSync(path.join(run.runsDir, "baseline", "config.json"), "utf8"));
    expect(config).toMatchObject({
      seq_len: 32,
      micro_batch_size: 4,
      gradient_accumulation_steps: 2,
      lr_scheduler: "constant",
    });
    const png = fs.readFileSync(path.join(run.assetsDir, "sanity_check.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(fs.readFileSync(path.join(run.assetsDir, "sanity_check.html"), "utf8")).toContain(
      "all layouts match",
    );
  }, 120_000);

  it("quick mode: every parallel layout of every step in this checkout matches the baseline", async () => {
    // what CI proves on each change: the quick subset of every landed step (asynchronous: it takes minutes)
    const runsDir = path.join(dir, "quick", "runs");
    const child = spawn(
      "pnpm",
      ["sanity", "--quick", "--runs_dir", runsDir, "--assets_dir", path.join(dir, "quick", "assets")],
      { cwd: root },
    );
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(status, output).toBe(0);
    expect(output).toMatch(/all \d+ match the baseline/);
    console.log(
      output
        .split("\n")
        .filter((l) => /pass|fail/.test(l))
        .join("\n"),
    );
  }, 900_000);

  it("exits non-zero and says so when the baseline does not finish", () => {
    // no training starts within a tenth of a second: the baseline counts as hung and is killed
    const run = sanity("hung", "--only", "^$", "--steps", "2", "--timeout", "0.1");
    expect(run.status, run.output).toBe(1);
    expect(run.output).toMatch(/the baseline failed, nothing to compare with: timed out after 0.1 s/);
    expect(fs.existsSync(path.join(run.assetsDir, "sanity_check.png"))).toBe(false);
  });

  it("refuses bad flags with a message", () => {
    const steps = sanity("flags", "--steps", "0");
    expect(steps.status).not.toBe(0);
    expect(steps.output).toContain("--steps must be a positive integer, got 0");
    const only = sanity("flags", "--only", "[");
    expect(only.status).toBe(2);
    expect(only.output).toContain("sanity: --only [: not a regular expression");
  });
});
