import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nn, optim } from "@picotron/tensor";
import { CheckpointManager } from "./index.ts";

class Tiny extends nn.Module {
  proj = new nn.Linear(8, 4);
}
const world = { rank: 0, barrier: () => {}, allreduce: () => {} }; // a world of one
const shard = { name: "tp0_pp0", writer: true };
const state = (step: number) => ({
  step,
  trained_tokens: step * 10,
  dataloader: { next_sample: step },
  seed: 1,
});

const dirs: string[] = [];
const saveDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-manager-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  vi.restoreAllMocks();
});

/** Saves steps 1..n of a run; returns the manager. */
function run(dir: string, n: number, fingerprint = { model: "tiny" }) {
  const manager = new CheckpointManager({ save_dir: dir, save_frequency: 1 }, world, shard, fingerprint);
  const model = new Tiny().initWeights(1);
  const optimizer = new optim.AdamW(model.parameters());
  for (let s = 1; s <= n; s++) manager.save_checkpoint(model, optimizer, state(s));
  return manager;
}
const load = (m: CheckpointManager) => {
  const fresh = new Tiny();
  return m.load_checkpoint(fresh, new optim.AdamW(fresh.parameters()));
};

describe("CheckpointManager.load_checkpoint", () => {
  it("falls back from a damaged newest checkpoint to the one before, with a warning naming it", () => {
    const dir = saveDir();
    const manager = run(dir, 3);
    const newest = path.join(dir, "step_000003");
    const shardFile = path.join(newest, "model_tp0_pp0.safetensors");
    fs.truncateSync(shardFile, 20); // a disk that filled up, a copy cut short
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const { dir: loaded, state: s } = load(manager);
    expect(loaded).toBe(path.join(dir, "step_000002"));
    expect(s.step).toBe(2);
    expect(warn).toHaveBeenCalledWith(
      expect.stringMatching(/^warning: skipping damaged checkpoint .*step_000003: /),
    );
  });

  it("an unreadable state.json is damage too; with nothing valid left it says so", () => {
    const dir = saveDir();
    const manager = run(dir, 1);
    fs.writeFileSync(path.join(dir, "step_000001", "state.json"), "{ not json");
    vi.spyOn(console, "warn").mockImplementation(() => {});
    expect(() => load(manager)).toThrow(/no valid checkpoint in .* \(all 1 damaged/);
  });

  it("refuses another run's checkpoint instead of falling back past it", () => {
    const dir = saveDir();
    run(dir, 2, { model: "other" });
    const mine = new CheckpointManager({ save_dir: dir, save_frequency: 1 }, world, shard, { model: "tiny" });
    expect(() => load(mine)).toThrow(/was saved by a different run configuration/);
  });

  it("removes the folders of failed saves on resume and on the next save", () => {
    const dir = saveDir();
    const manager = run(dir, 1);
    fs.mkdirSync(path.join(dir, ".tmp-step_7"));
    load(manager);
    expect(fs.readdirSync(dir)).toEqual(["step_000001"]);
    fs.mkdirSync(path.join(dir, ".tmp-step_9"));
    run(dir, 2);
    expect(fs.readdirSync(dir).sort()).toEqual(["step_000001", "step_000002"]);
  });

  it("a full disk fails the save with a clear message and keeps the checkpoints before it (root: a tiny tmpfs)", (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip();
    const dir = saveDir();
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    if (m.status !== 0) ctx.skip();
    try {
      const manager = new CheckpointManager({ save_dir: dir, save_frequency: 1 }, world, shard, {});
      const small = new Tiny().initWeights(1);
      manager.save_checkpoint(small, new optim.AdamW(small.parameters()), state(1));
      const big = new (class extends nn.Module {
        proj = new nn.Linear(256, 256); // 256 KiB of weights: more than the disk holds
      })().initWeights(1);
      expect(() => manager.save_checkpoint(big, new optim.AdamW(big.parameters()), state(2))).toThrow(
        /--save_dir .*: saving step 2 failed \(no space left on the device\); the checkpoints before it are untouched/,
      );
      expect(fs.readdirSync(dir)).toEqual(["step_000001"]);
      expect(load(manager).state.step).toBe(1);
    } finally {
      spawnSync("umount", [dir]);
    }
  });

  it("saves every save_frequency steps and at the last step", () => {
    const m = new CheckpointManager({ save_dir: "x", save_frequency: 5 }, world, shard, {});
    expect([4, 5, 6, 10].map((s) => m.should_save(s, false))).toEqual([false, true, false, true]);
    expect(m.should_save(3, true)).toBe(true);
    expect(CheckpointManager.fromArgs({ save_frequency: 5 }, world, shard, {})).toBeNull();
  });
});
