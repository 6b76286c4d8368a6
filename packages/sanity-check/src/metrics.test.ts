import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findRuns, readMetrics } from "./metrics.ts";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-metrics-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const line = (step: number, loss: number) =>
  JSON.stringify({
    step,
    loss,
    lr: 1e-3,
    trained_tokens: step * 256,
    tokens_per_s: 100,
    mfu: 1,
    rss_bytes: 1e8,
    grad_norm: null,
    step_s: 0.5,
  });

function write(rel: string, text: string): string {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

describe("readMetrics", () => {
  it("reads one row per line, keeping null for what the trainer could not compute", () => {
    const file = write("run/metrics.jsonl", `${line(1, 5.5)}\n${line(2, 5.25)}\n`);
    const rows = readMetrics(file);
    expect(rows.map((r) => [r.step, r.loss])).toEqual([
      [1, 5.5],
      [2, 5.25],
    ]);
    expect(rows[0]!.grad_norm).toBeNull();
    expect(rows[1]!.trained_tokens).toBe(512);
  });

  it("names the file and line of a malformed line", () => {
    const file = write("run/metrics.jsonl", `${line(1, 5)}\n{"step": 2, "loss": \n`);
    expect(() => readMetrics(file)).toThrow(new RegExp(`^${file}:2: not valid JSON`));
    const noLoss = write("b/metrics.jsonl", `${line(1, 5)}\n\n{"step": 3}\n`);
    expect(() => readMetrics(noLoss)).toThrow(`${noLoss}:3: "loss" must be a number`);
    const badType = write("c/metrics.jsonl", `{"step": 1, "loss": 2, "mfu": "high"}\n`);
    expect(() => readMetrics(badType)).toThrow(`${badType}:1: "mfu" must be a number or null`);
    const notObject = write("d/metrics.jsonl", `[1, 2]\n`);
    expect(() => readMetrics(notObject)).toThrow(`${notObject}:1: expected a JSON object`);
  });

  it("reads an unterminated last line, except in live mode where it may be half written", () => {
    const file = write("run/metrics.jsonl", `${line(1, 5)}\n${line(2, 4)}`);
    expect(readMetrics(file)).toHaveLength(2);
    fs.writeFileSync(file, `${line(1, 5)}\n{"step": 2, "lo`);
    expect(readMetrics(file, { live: true })).toHaveLength(1);
    expect(() => readMetrics(file)).toThrow(`${file}:2: not valid JSON`);
  });

  it("says when the file is missing", () => {
    expect(() => readMetrics(path.join(dir, "nope.jsonl"))).toThrow(/nope.jsonl: no such file/);
  });
});

describe("findRuns", () => {
  it("finds runs at any depth up to 3, named by their path, with their config", () => {
    write("a/metrics.jsonl", `${line(1, 5)}\n`);
    write("a/config.json", JSON.stringify({ layout: "DP(1)" }));
    write("sanity/tp2/metrics.jsonl", `${line(1, 5)}\n`);
    write("sanity/model/config.json", "{}");
    write("x/y/z/w/metrics.jsonl", `${line(1, 5)}\n`);
    const runs = findRuns(dir);
    expect(runs.map((r) => r.name)).toEqual(["a", path.join("sanity", "tp2")]);
    expect(runs[0]!.config).toEqual({ layout: "DP(1)" });
    expect(runs[1]!.config).toEqual({});
  });

  it("says which config.json is broken (and still shows its run) and which directory is missing", () => {
    write("a/metrics.jsonl", `${line(1, 5)}\n`);
    const config = write("a/config.json", "{oops");
    const warnings: string[] = [];
    const runs = findRuns(dir, (m) => warnings.push(m));
    expect(runs.map((r) => [r.name, r.metrics.length])).toEqual([["a", 1]]);
    expect(warnings).toEqual([expect.stringContaining(`skipped ${config}: not valid JSON`)]);
    expect(() => findRuns(path.join(dir, "missing"))).toThrow(/missing: no such directory/);
  });

  it("skips a corrupt line of one run with a warning naming file:line, and shows every run", () => {
    const bad = write("a/metrics.jsonl", `${line(1, 5)}\n{"step": 2, "lo\n${line(3, 4)}\n`);
    write("b/metrics.jsonl", `${line(1, 6)}\n${line(2, 5)}\n`);
    const warnings: string[] = [];
    const runs = findRuns(dir, (m) => warnings.push(m));
    expect(runs.map((r) => [r.name, r.metrics.map((m) => m.step)])).toEqual([
      ["a", [1, 3]],
      ["b", [1, 2]],
    ]);
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`^skipped ${bad}:2: not valid JSON`))]);
  });
});
