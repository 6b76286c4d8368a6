import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nn, optim, Tensor } from "@picotron/tensor";
import { CheckpointManager, loadCheckpoint, saveCheckpoint } from "./index.ts";
import { describeLayout, fingerprintDiff } from "./reshard.ts";

// A tiny model named like the Llama's pieces, so the join cuts them as tensor_parallel.ts does: up_proj by
// rows (column-parallel), down_proj by columns (row-parallel), the norm replicated.
const [H, F] = [4, 6];
class Mlp extends nn.Module {
  constructor(
    readonly up_proj: nn.Linear,
    readonly down_proj: nn.Linear,
  ) {
    super();
  }
}
class Tiny extends nn.Module {
  mlp: Mlp;
  final_norm = new nn.RMSNorm(H, 1e-5);
  /** tp rank `rank` of `tp`: its shard of each weight, placed in the whole tensor through masterIndex. */
  constructor(tp = 1, rank = 0) {
    super();
    const local = F / tp;
    this.mlp = new Mlp(new nn.Linear(H, local), new nn.Linear(local, H));
    this.mlp.up_proj.weight.masterIndex = (j) => rank * local * H + j;
    this.mlp.down_proj.weight.masterIndex = (j) => Math.floor(j / local) * F + rank * local + (j % local);
  }
}
/** A pipeline stage that holds only the MLP (its names are the whole model's). */
class MlpStage extends nn.Module {
  mlp = new Mlp(new nn.Linear(H, F), new nn.Linear(F, H));
}

const world = { rank: 0, barrier: () => {}, allreduce: () => {} }; // a world of one
const tp = (r: number) => ({ name: `tp${r}_pp0`, writer: true });
const fingerprint = (layout: number[], layers = 2) => ({ model: { num_hidden_layers: layers }, layout });
const state = (step: number, layout: number[]) => ({
  step,
  trained_tokens: step * 10,
  dataloader: { next_sample: step },
  seed: 1,
  fingerprint: fingerprint(layout),
});

/** A model that has taken 3 AdamW steps: moments and step count are not the initial ones. */
function trained(m: nn.Module): optim.AdamW {
  const opt = new optim.AdamW(m.parameters());
  for (let s = 1; s <= 3; s++) {
    for (const p of m.parameters())
      p.grad = new Tensor(
        Float32Array.from(p.values(), (v, j) => Math.sin(v * 7 + j + s)),
        p.shape,
      );
    opt.step();
  }
  return opt;
}
const values = (m: nn.Module) => m.parameters().map((p) => [...p.values()]);
const moments = (o: optim.AdamW) => Object.values(o.stateDict().tensors).map((t) => [...t.values()]);

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-reshard-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  vi.restoreAllMocks();
});

describe("resuming under another layout", () => {
  it("tp 1 -> tp 2 fills each shard through masterIndex, and tp 2 -> tp 1 joins them back exactly", () => {
    const whole = new Tiny().initWeights(3);
    const wholeOpt = trained(whole);
    const one = tmp();
    const saved = saveCheckpoint(one, world, tp(0), whole, wholeOpt, state(3, [1, 1, 1]));

    // tp 2: each rank's elements are the whole tensor's at its masterIndex, moments too
    const shards = [0, 1].map((r) => new Tiny(2, r));
    const opts = shards.map((s) => new optim.AdamW(s.parameters()));
    const two = tmp();
    shards.forEach((s, r) => {
      const loaded = loadCheckpoint(saved, tp(r), s, opts[r]!, fingerprint([1, 1, 2]));
      expect(loaded.step).toBe(3);
      expect(opts[r]!.stepCount).toBe(3);
      const wholeMoments = Object.values(wholeOpt.stateDict().tensors);
      s.parameters().forEach((p, i) => {
        const src = whole.parameters()[i]!.values();
        expect([...p.values()]).toEqual(Array.from(p.values(), (_, j) => src[p.masterIndex(j)]));
        for (const k of [0, 1]) {
          const m = opts[r]!.stateDict().tensors[`state.${i}.${k ? "exp_avg_sq" : "exp_avg"}`]!.values();
          const want = wholeMoments[2 * i + k]!.values();
          expect([...m]).toEqual(Array.from(m, (_, j) => want[p.masterIndex(j)]));
        }
      });
      // a save replaces its step's folder: the second rank's files are copied in beside the first's
      const out = saveCheckpoint(r === 0 ? two : tmp(), world, tp(r), s, opts[r]!, state(3, [1, 1, 2]));
      for (const f of [`model_tp${r}_pp0`, `optimizer_tp${r}_pp0`])
        if (r === 1)
          fs.copyFileSync(
            path.join(out, `${f}.safetensors`),
            path.join(two, "step_000003", `${f}.safetensors`),
          );
    });
    // the norm is replicated, the matrices cut in halves: the shards together are the whole model
    expect(shards[0]!.mlp.up_proj.weight.shape).toEqual([F / 2, H]);
    expect(shards[1]!.mlp.down_proj.weight.shape).toEqual([H, F / 2]);

    // and back: the tp 2 checkpoint joined into one rank is the original, bit for bit
    const back = new Tiny();
    const backOpt = new optim.AdamW(back.parameters());
    const dir = path.join(two, "step_000003");
    loadCheckpoint(dir, tp(0), back, backOpt, fingerprint([1, 1, 1]));
    expect(values(back)).toEqual(values(whole));
    expect(moments(backOpt)).toEqual(moments(wholeOpt));
    expect(backOpt.stepCount).toBe(3);
  });

  it("a pipeline stage takes only its own names", () => {
    const whole = new Tiny().initWeights(5);
    const wholeOpt = trained(whole);
    const saved = saveCheckpoint(tmp(), world, tp(0), whole, wholeOpt, state(3, [1, 1, 1]));
    const stage = new MlpStage();
    const stageOpt = new optim.AdamW(stage.parameters());
    loadCheckpoint(saved, { name: "tp0_pp1", writer: true }, stage, stageOpt, fingerprint([1, 2, 1]));
    expect(values(stage)).toEqual(values(whole).slice(0, 2));
    expect(moments(stageOpt)).toEqual(moments(wholeOpt).slice(0, 4));
  });

  it("another model is still refused, naming what differs", () => {
    const m = new Tiny().initWeights(1);
    const saved = saveCheckpoint(tmp(), world, tp(0), m, trained(m), state(3, [1, 1, 1]));
    const fresh = new Tiny(2, 0);
    const load = () =>
      loadCheckpoint(saved, tp(0), fresh, new optim.AdamW(fresh.parameters()), {
        ...fingerprint([1, 1, 2], 3),
        seq_len: 32,
      });
    expect(load).toThrow(
      /was saved by a different run configuration: model\.num_hidden_layers 3 here, 2 in the checkpoint; seq_len 32 here, absent in the checkpoint$/,
    );
    expect(fingerprintDiff(fingerprint([1, 1, 2]), fingerprint([2, 1, 1]))).toEqual([
      { field: "layout", here: "[1,1,2]", checkpoint: "[2,1,1]" },
    ]);
    expect(describeLayout([1, 2, 2, 1])).toBe("dp 1 x pp 2 x cp 2 x tp 1");
  });

  it("the manager says it re-sharded, and still falls back over a damaged checkpoint", () => {
    const dir = tmp();
    const whole = new Tiny().initWeights(2);
    const opt = trained(whole);
    // a dp 2 x tp 2 run's checkpoints: the whole model cut in tp halves, each half's files side by side
    for (const step of [1, 2]) {
      const src = saveCheckpoint(tmp(), world, tp(0), whole, opt, state(step, [1, 1, 1]));
      for (const r of [0, 1]) {
        const s = new Tiny(2, r);
        const sOpt = new optim.AdamW(s.parameters());
        loadCheckpoint(src, tp(r), s, sOpt, fingerprint([1, 1, 2]));
        const out = saveCheckpoint(r === 0 ? dir : tmp(), world, tp(r), s, sOpt, state(step, [2, 1, 2]));
        for (const f of [`model_tp${r}_pp0`, `optimizer_tp${r}_pp0`])
          if (r === 1)
            fs.copyFileSync(
              path.join(out, `${f}.safetensors`),
              path.join(dir, `step_00000${step}`, `${f}.safetensors`),
            );
      }
    }
    fs.truncateSync(path.join(dir, "step_000002", "optimizer_tp1_pp0.safetensors"), 20);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const manager = new CheckpointManager(
      { save_dir: dir, save_frequency: 1 },
      world,
      tp(0),
      fingerprint([1, 1, 4]),
    );
    const m = new Tiny();
    const loaded = manager.load_checkpoint(m, new optim.AdamW(m.parameters()));
    expect(loaded.state.step).toBe(1);
    expect(warn).toHaveBeenCalledWith(
      expect.stringMatching(/^warning: skipping damaged checkpoint .*step_000002: .*optimizer_tp1_pp0/),
    );
    expect(log).toHaveBeenCalledWith(
      "resumed from a dp 2 x pp 1 x tp 2 checkpoint: re-sharded for dp 1 x pp 1 x tp 4",
    );
    expect(values(m)).toEqual(values(whole));
  });
});
