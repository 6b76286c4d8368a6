import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  LAYOUTS,
  SHARED,
  findStep,
  microBatchSize,
  selectLayouts,
  trainFlags,
  worldSize,
  type Layout,
} from "./layouts.ts";

/** The value after `--name` in a flag list. */
function flag(flags: string[], name: string): string | undefined {
  const i = flags.indexOf(`--${name}`);
  return i < 0 ? undefined : flags[i + 1];
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fake repository with the given step folders, each a package named stepN. */
function fakeRoot(steps: number[]): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-layouts-"));
  dirs.push(root);
  for (const n of steps) {
    fs.mkdirSync(path.join(root, `step${n}_thing`));
    fs.writeFileSync(path.join(root, `step${n}_thing`, "package.json"), JSON.stringify({ name: `step${n}` }));
  }
  return root;
}

describe("the layout registry", () => {
  it("has unique names and the step-3 baseline first", () => {
    const names = LAYOUTS.map((l) => l.name);
    expect(new Set(names).size).toBe(names.length);
    expect(LAYOUTS[0]).toMatchObject({ name: "baseline", step: 3 });
    expect(worldSize(LAYOUTS[0]!)).toBe(1);
  });

  it("keeps the global batch equal for every layout", () => {
    for (const layout of LAYOUTS) {
      const flags = trainFlags(layout, 20, "/model", "/runs");
      const dp = layout.sizes?.dp ?? 1;
      const sequences =
        Number(flag(flags, "micro_batch_size")) * Number(flag(flags, "gradient_accumulation_steps")) * dp;
      expect(sequences, layout.name).toBe(SHARED.global_batch_sequences);
      expect(Number(flag(flags, "max_tokens")), layout.name).toBe(
        20 * SHARED.global_batch_sequences * SHARED.seq_len,
      );
    }
  });

  it("divides the shared model for every tp, pp and cp size it lists", () => {
    const { num_attention_heads: heads, num_key_value_heads: kv, num_hidden_layers: layers } = SHARED.model;
    for (const { name, sizes = {} } of LAYOUTS) {
      const { tp = 1, pp = 1, cp = 1 } = sizes;
      expect(heads % tp, name).toBe(0);
      expect(kv % tp, name).toBe(0);
      expect(layers % pp, name).toBe(0);
      expect(SHARED.seq_len % cp, name).toBe(0);
    }
  });

  it("passes a size flag only when the layout sets it, plus its own flags", () => {
    const flags = trainFlags(
      { name: "x", step: 9, sizes: { cp: 2, tp: 2 }, flags: { pp_engine: "1f1b" } },
      5,
      "/m",
      "/r",
    );
    expect(flag(flags, "cp_size")).toBe("2");
    expect(flag(flags, "tp_size")).toBe("2");
    expect(flag(flags, "dp_size")).toBeUndefined();
    expect(flag(flags, "pp_engine")).toBe("1f1b");
    expect(flag(flags, "lr_scheduler")).toBe("constant");
    expect(flag(flags, "run_name")).toBe("x");
    expect(flag(baselineFlags(), "cp_size")).toBeUndefined();
  });

  it("refuses a dp size that does not divide the micro-batch", () => {
    expect(() => microBatchSize({ name: "dp3", step: 5, sizes: { dp: 3 } })).toThrow(
      /dp3: dp 3 does not divide/,
    );
  });
});

function baselineFlags(): string[] {
  return trainFlags(LAYOUTS[0]!, 20, "/m", "/r");
}

describe("selectLayouts", () => {
  const registry: Layout[] = [
    { name: "base", step: 3 },
    { name: "tp2", step: 4, sizes: { tp: 2 }, quick: true },
    { name: "tp4", step: 4, sizes: { tp: 4 } },
    { name: "dp2", step: 5, sizes: { dp: 2 }, quick: true },
    { name: "tp2_ci", step: 4, sizes: { tp: 2 }, quick: "only" },
  ];
  const names = (sel: ReturnType<typeof selectLayouts>) => sel.map((s) => s.layout.name);

  it("runs only the layouts whose step folder exists, baseline first", () => {
    const root = fakeRoot([3, 4]);
    const sel = selectLayouts(root, { quick: false }, registry);
    expect(names(sel)).toEqual(["base", "tp2", "tp4"]);
    expect(sel[1]!.step).toEqual({ dir: path.join(root, "step4_thing"), packageName: "step4" });
  });

  it("narrows to the quick subset and to --only, but keeps the baseline", () => {
    const root = fakeRoot([3, 4, 5]);
    expect(names(selectLayouts(root, { quick: true }, registry))).toEqual(["base", "tp2", "dp2", "tp2_ci"]);
    expect(names(selectLayouts(root, { quick: false, only: "^dp" }, registry))).toEqual(["base", "dp2"]);
    expect(names(selectLayouts(root, { quick: false, only: "nothing" }, registry))).toEqual(["base"]);
  });

  it("says what is wrong with a bad --only or a missing baseline", () => {
    expect(() => selectLayouts(fakeRoot([3]), { quick: false, only: "(" }, registry)).toThrow(
      /--only \(: not a regular/,
    );
    expect(() => selectLayouts(fakeRoot([4]), { quick: false }, registry)).toThrow(
      /baseline's step 3 has no step3_\* folder/,
    );
  });

  it("finds this repository's baseline", () => {
    const step = findStep(path.resolve(import.meta.dirname, "../../.."), 3);
    expect(step?.packageName).toBe("step3");
  });
});
