import { describe, expect, it } from "vitest";
import { F, Tensor, profile } from "./index.ts";

describe("profile", () => {
  it("times each op's forward and backward by output shape; self times add up to the total", () => {
    const x = new Tensor(new Float32Array(6).fill(1), [2, 3]).requiresGrad_();
    const w = new Tensor(new Float32Array(12).fill(0.5), [4, 3]).requiresGrad_();
    const report = profile(() => F.linear(x, w).sum().backward());
    const names = report.rows.map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining(["Linear [2, 4]", "Linear.backward [2, 4]", "Sum []", "(other)"]),
    );
    expect(report.rows.find((r) => r.name === "Linear [2, 4]")!.calls).toBe(1);
    const sum = report.rows.reduce((s, r) => s + r.ms, 0);
    expect(sum).toBeCloseTo(report.totalMs, 6);
    expect(report.rows.map((r) => r.ms)).toEqual([...report.rows.map((r) => r.ms)].sort((a, b) => b - a));
    expect(report.table()).toMatch(/Linear\.backward \[2, 4\]/);
  });

  it("is off outside profile() and cannot be nested", () => {
    expect(() => profile(() => profile(() => {}))).toThrow(/nested/);
    const report = profile(() => {});
    expect(report.rows.map((r) => r.name)).toEqual(["(other)"]);
  });
});
