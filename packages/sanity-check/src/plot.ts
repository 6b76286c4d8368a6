// Renders the sanity check's charts to a PNG in Node: chart.js draws on @napi-rs/canvas (skia), whose
// canvas is close enough to the browser's that chart.js runs unchanged on its "basic" (no DOM) platform.
import fs from "node:fs";
import path from "node:path";
import { createCanvas, type SKRSContext2D } from "@napi-rs/canvas";
import { Chart, registerables, type ChartItem, type ScriptableScaleContext } from "chart.js";
import { powerOfTenLabel, sanityCharts, type CurveSeries, type LineConfig } from "./charts.ts";

Chart.register(...registerables);

const WIDTH = 1600;
const PANEL_HEIGHT = 620;
const FONT_SIZE = 18;

/** Fills the canvas white before chart.js draws, so the PNG is not transparent in dark viewers. */
const whiteBackground = {
  id: "whiteBackground",
  beforeDraw(chart: Chart) {
    const { ctx, width, height } = chart;
    ctx.save();
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, height);
    ctx.restore();
  },
};

/** Draws one chart on its own canvas and copies it into `target` at height `top`. */
function drawPanel(config: LineConfig, target: SKRSContext2D, top: number): void {
  const canvas = createCanvas(WIDTH, PANEL_HEIGHT);
  const y = config.options?.scales?.y;
  if (y?.type === "logarithmic") {
    // label and grid line only at powers of ten: the minor ticks would crowd the axis
    y.ticks = { ...y.ticks, callback: powerOfTenLabel };
    y.grid = {
      color: (c: ScriptableScaleContext) => (powerOfTenLabel(c.tick.value) ? "#ddd" : "transparent"),
    };
  }
  // chart.js expects a DOM canvas; the skia one offers the same getContext("2d") and size properties
  const chart = new Chart(canvas as unknown as ChartItem, {
    ...config,
    options: { ...config.options, devicePixelRatio: 1 },
    plugins: [whiteBackground],
  });
  target.drawImage(canvas, 0, top);
  // after the copy: destroy() clears the canvas
  chart.destroy();
}

/** Writes the loss panel above the |Δloss| panel into one PNG. */
export function renderSanityPng(file: string, series: readonly CurveSeries[], tolerance: number): void {
  const { loss, diff } = sanityCharts(series, tolerance, FONT_SIZE);
  const out = createCanvas(WIDTH, PANEL_HEIGHT * 2);
  const ctx = out.getContext("2d");
  drawPanel(loss, ctx, 0);
  drawPanel(diff, ctx, PANEL_HEIGHT);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, out.toBuffer("image/png"));
}
