import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { init } from "./index.ts";

const steps = (file: string) =>
  fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l).step);

describe("wandb.init / log", () => {
  it("writes config.json and one metrics line per step; a new run starts empty", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wandb-"));
    try {
      const run = init({ dir, name: "r", config: { lr: 1 } });
      run.log({ step: 1, loss: 2 });
      run.log({ step: 2, loss: 1.5 });
      expect(JSON.parse(fs.readFileSync(path.join(dir, "r", "config.json"), "utf8"))).toEqual({ lr: 1 });
      expect(steps(run.file)).toEqual([1, 2]);
      expect(steps(init({ dir, name: "r", config: {} }).file)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a resumed run drops the steps after its checkpoint: none is logged twice", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wandb-"));
    try {
      const first = init({ dir, name: "r", config: {} });
      for (let s = 1; s <= 88; s++) first.log({ step: s, loss: 1 / s });
      fs.appendFileSync(first.file, '{"step": 89, "lo'); // the process was killed mid-line
      const resumed = init({ dir, name: "r", config: {}, resumeStep: 50 });
      for (let s = 51; s <= 100; s++) resumed.log({ step: s, loss: 1 / s });
      expect(steps(resumed.file)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
