import { describe, expect, it } from "vitest";
import { DivergenceGuard, lr_schedule, optimizer_args } from "./recipe.ts";

const args = { lr_scheduler: "cosine", learning_rate: 1e-3, warmup_steps: 2, min_lr: 1e-4 };

describe("lr_schedule", () => {
  it("warms up linearly, then decays along a cosine to min_lr", () => {
    const s = lr_schedule(args, 10);
    expect(s.lrAt(0)).toBeCloseTo(5e-4, 12);
    expect(s.lrAt(1)).toBeCloseTo(1e-3, 12);
    expect(s.lrAt(6)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12); // half-way through the decay
    expect(s.lrAt(10)).toBeCloseTo(1e-4, 12);
  });

  it("clamps the warmup to a short run, and is constant when asked", () => {
    expect(lr_schedule({ ...args, warmup_steps: 50 }, 4).lrAt(3)).toBeCloseTo(1e-3, 12);
    expect(lr_schedule({ ...args, lr_scheduler: "constant" }, 4).lrAt(3)).toBe(1e-3);
  });

  it("refuses --min_lr above --learning_rate, naming both flags", () => {
    expect(() => lr_schedule({ ...args, min_lr: 0.1 }, 10)).toThrow(
      "--min_lr 0.1 is above --learning_rate 0.001",
    );
  });

  it("declares the recipe's flags with their defaults", () => {
    expect(Object.keys(optimizer_args)).toEqual([
      "lr_scheduler",
      "warmup_steps",
      "min_lr",
      "weight_decay",
      "max_grad_norm",
    ]);
    expect(optimizer_args.max_grad_norm.default).toBe(1.0);
  });
});

describe("DivergenceGuard", () => {
  it("lets a learning run through", () => {
    const guard = new DivergenceGuard();
    for (const [i, loss] of [5.9, 5.7, 6.2, 3.1, 0.7].entries()) guard.check(i + 1, loss, 1.5);
  });

  it("stops a non-finite loss or gradient norm, or a loss 100x the first, naming the step", () => {
    expect(() => new DivergenceGuard().check(3, NaN, 1)).toThrow(
      /^step 3: the loss is NaN: the run diverged/,
    );
    expect(() => new DivergenceGuard().check(1, 5, Infinity)).toThrow(
      "step 1: the gradient norm is Infinity",
    );
    const guard = new DivergenceGuard();
    guard.check(1, 6, 2);
    guard.check(2, 500, 2e5); // 83x: still going
    expect(() => guard.check(3, 2.6e13, 1e9)).toThrow(
      /step 3: the loss 2\.60e\+13 is over 100x the first step's 6\.00.*--learning_rate/,
    );
  });
});
