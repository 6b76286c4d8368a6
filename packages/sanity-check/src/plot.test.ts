import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadImage, createCanvas } from "@napi-rs/canvas";
import { afterAll, describe, expect, it } from "vitest";
import { DIFF_FLOOR, layoutColor, sanityCharts, type CurveSeries } from "./charts.ts";
import { compareWithBaseline } from "./compare.ts";
import { renderSanityPng } from "./plot.ts";
import { writeSanityHtml } from "./report.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-plot-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const base = Array.from({ length: 20 }, (_, i) => 5.5 - Math.log1p(i));
const curve = (name: string, offset: number, baseline = false): CurveSeries => {
  const losses = base.map((l) => l + offset);
  return { name, losses, diffs: losses.map((l, i) => Math.abs(l - base[i]!)), baseline };
};
// the rerun's diffs are all exactly 0: drawn only thanks to the floor
const series = [curve("baseline", 0, true), curve("baseline_rerun", 0), curve("tp2", 2e-4)];

/** Pixels of one colour (within a small margin for anti-aliasing) in the top or bottom half of a PNG. */
async function countColor(file: string, hex: string, half: "top" | "bottom"): Promise<number> {
  const image = await loadImage(file);
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const top = half === "top" ? 0 : image.height / 2;
  const { data } = ctx.getImageData(0, top, image.width, image.height / 2);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i]! - r!) + Math.abs(data[i + 1]! - g!) + Math.abs(data[i + 2]! - b!) < 24) n++;
  }
  return n;
}

describe("the sanity charts", () => {
  it("emphasize the baseline and floor zero diffs for the log axis", () => {
    const { loss, diff } = sanityCharts(series, 1e-3, 12);
    const [baseSet, rerunSet] = loss.data.datasets;
    expect(baseSet).toMatchObject({ borderColor: "#000000", label: "baseline (reference)" });
    expect(baseSet!.borderWidth).toBeGreaterThan(rerunSet!.borderWidth as number);
    expect(rerunSet!.borderColor).toBe(layoutColor(0));
    // no baseline curve in the diff panel; the last dataset is the tolerance line
    expect(diff.data.datasets.map((d) => d.label)).toEqual(["baseline_rerun", "tp2", "tolerance 0.001"]);
    expect(diff.data.datasets[0]!.data.every((p) => p.y === DIFF_FLOOR)).toBe(true);
    expect(diff.data.datasets[1]!.data[5]!.y).toBeCloseTo(2e-4, 10);
    expect(diff.options?.scales?.y?.type).toBe("logarithmic");
    // plain data: it goes into the HTML page as JSON
    expect(JSON.parse(JSON.stringify({ loss, diff }))).toEqual({ loss, diff });
  });

  it("render to a PNG: baseline black in the loss panel, each layout in its colour in both", async () => {
    const file = path.join(dir, "assets", "sanity_check.png");
    // tp2 far enough off to have its own pixels in the loss panel (the others coincide)
    renderSanityPng(file, [series[0]!, series[1]!, curve("tp2", 0.3)], 1e-3);
    const image = await loadImage(file);
    expect([image.width, image.height]).toEqual([1600, 1240]);
    expect(await countColor(file, "#000000", "top")).toBeGreaterThan(2000);
    for (const half of ["top", "bottom"] as const) {
      // a line across the panel, more than its legend swatch
      expect(await countColor(file, layoutColor(1), half), `tp2, ${half}`).toBeGreaterThan(2000);
    }
    // the rerun's Δ = 0 line is drawn (at the floor), not dropped by the log axis
    expect(await countColor(file, layoutColor(0), "bottom")).toBeGreaterThan(2000);
  });

  it("go into a self-contained HTML page with the results table", () => {
    const baselineRows = base.map((loss, i) => ({
      step: i + 1,
      loss,
      lr: null,
      trained_tokens: null,
      tokens_per_s: 1000,
      tokens_per_s_per_rank: null,
      mfu: null,
      rss_bytes: null,
      grad_norm: null,
      step_s: null,
    }));
    const comparisons = [
      compareWithBaseline(
        { name: "baseline", stepDir: "step3_dataloader", ranks: 1, tolerance: 1e-3, metrics: baselineRows },
        baselineRows,
        20,
      ),
      compareWithBaseline(
        { name: "<tp2>", stepDir: "step4", ranks: 2, tolerance: 1e-3, metrics: new Error("exited with 1") },
        baselineRows,
        20,
      ),
    ];
    const file = path.join(dir, "assets", "sanity_check.html");
    writeSanityHtml(file, { comparisons, series, tolerance: 1e-3, summary: "quick run" });
    const html = fs.readFileSync(file, "utf8");
    expect(html).toContain("Sanity check: 1 layout(s) failed");
    expect(html).toContain("<td>&#60;tp2&#62;</td>");
    expect(html).toContain("FAIL: exited with 1");
    expect(html).toContain("Chart.js v4");
    // nothing is fetched from anywhere: no src= or href= at all
    expect(html).not.toMatch(/\s(src|href)=/);
    expect(html).not.toContain("sourceMappingURL");
  });
});
