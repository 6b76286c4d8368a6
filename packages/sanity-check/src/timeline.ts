// A timeline PNG of one training step from a run's --trace (a Chrome trace-event JSON, one track per rank):
// one row per rank, a box per span — forward and backward labelled with their micro-batch, point-to-point
// transfers and ZeRO-3's all-gathers as thin strips, all-reduces and the optimizer step — and white where a
// rank waits: the pipeline bubble. Drawn by chart.js (floating horizontal bars) on @napi-rs/canvas.
//   tsx packages/sanity-check/src/timeline.ts trace.json timeline.png [--step N] [--title "pp 4, AFAB"]
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createCanvas } from "@napi-rs/canvas";
import {
  BarElement,
  Chart,
  registerables,
  type ChartConfiguration,
  type ChartItem,
  type Plugin,
} from "chart.js";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { layoutColor } from "./charts.ts";

Chart.register(...registerables);

/** A span of a trace: a "complete" (ph X) event, times in µs. */
export interface TraceSpan {
  name: string;
  cat: string;
  ts: number;
  dur: number;
  pid: number;
  args: { step?: number; microbatch?: number };
}

export interface Trace {
  spans: TraceSpan[];
  /** Track names by pid (from process_name metadata), "rank <pid>" when absent. */
  tracks: Map<number, string>;
}

/** The categories drawn, in legend order, with their colour and bar thickness (share of the row). */
const CATEGORIES: { cat: string; label: string; color: string; thickness: number }[] = [
  // first: chart.js draws the first dataset on top, and these strips lie inside the forward and backward boxes
  { cat: "zero3", label: "all-gather of a layer (ZeRO-3)", color: layoutColor(6), thickness: 0.4 },
  { cat: "forward", label: "forward", color: layoutColor(0), thickness: 0.8 },
  { cat: "backward", label: "backward", color: layoutColor(1), thickness: 0.8 },
  { cat: "p2p", label: "send / recv", color: layoutColor(9), thickness: 0.25 },
  { cat: "all-reduce", label: "all-reduce", color: layoutColor(3), thickness: 0.8 },
  { cat: "optimizer", label: "optimizer", color: layoutColor(4), thickness: 0.8 },
];
const COMPUTE = new Set(["forward", "backward"]);

export function readTrace(file: string): Trace {
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as
    { traceEvents?: Record<string, unknown>[] } | Record<string, unknown>[];
  const events = Array.isArray(raw) ? raw : raw.traceEvents;
  if (!Array.isArray(events)) throw new Error(`${file}: not a Chrome trace (no traceEvents array)`);
  const spans = events.filter((e) => e.ph === "X") as unknown as TraceSpan[];
  const tracks = new Map<number, string>();
  for (const e of events) {
    if (e.ph === "M" && e.name === "process_name")
      tracks.set(e.pid as number, (e.args as { name: string }).name);
  }
  for (const s of spans) if (!tracks.has(s.pid)) tracks.set(s.pid, `rank ${s.pid}`);
  return { spans, tracks };
}

/** The steps the trace covers, in order. */
export function tracedSteps(trace: Trace): number[] {
  return [...new Set(trace.spans.map((s) => s.args.step ?? 0))].sort((a, b) => a - b);
}

/** The spans of one step, with times in ms from the step's first span. */
export function stepSpans(trace: Trace, step: number): TraceSpan[] {
  const spans = trace.spans.filter((s) => (s.args.step ?? 0) === step);
  if (spans.length === 0) {
    throw new Error(`the trace has no spans of step ${step} (steps: ${tracedSteps(trace).join(", ")})`);
  }
  const start = Math.min(...spans.map((s) => s.ts));
  return spans.map((s) => ({ ...s, ts: (s.ts - start) / 1e3, dur: s.dur / 1e3 }));
}

/**
 * The pipeline bubble: the share of the ranks' time, from the first forward to the last backward of the step
 * (on any rank), that is not spent computing a forward or a backward.
 */
export function bubbleFraction(spans: readonly TraceSpan[]): number {
  const compute = spans.filter((s) => COMPUTE.has(s.cat));
  if (compute.length === 0) throw new Error("bubbleFraction: the step has no forward or backward spans");
  const start = Math.min(...compute.map((s) => s.ts));
  const end = Math.max(...compute.map((s) => s.ts + s.dur));
  const ranks = new Set(spans.map((s) => s.pid)).size;
  const busy = compute.reduce((sum, s) => sum + s.dur, 0);
  return 1 - busy / (ranks * (end - start));
}

type BarConfig = ChartConfiguration<"bar", { x: [number, number]; y: string; label: string }[]>;

/** Floating bars [start, end] in ms, one category per dataset, all on their rank's row. */
export function timelineChart(
  spans: readonly TraceSpan[],
  tracks: Map<number, string>,
  title: string,
  fontSize: number,
): BarConfig {
  const pids = [...new Set(spans.map((s) => s.pid))].sort((a, b) => a - b);
  return {
    type: "bar",
    data: {
      labels: pids.map((p) => tracks.get(p) ?? `rank ${p}`),
      datasets: CATEGORIES.map(({ cat, label, color, thickness }) => ({
        label,
        data: spans
          .filter((s) => s.cat === cat)
          .map((s) => ({
            x: [s.ts, s.ts + s.dur] as [number, number],
            y: tracks.get(s.pid) ?? `rank ${s.pid}`,
            label:
              s.args.microbatch === undefined
                ? ""
                : `${cat === "forward" ? "F" : "B"}${s.args.microbatch + 1}`,
          })),
        backgroundColor: color,
        borderColor: "#fff",
        borderWidth: COMPUTE.has(cat) ? 1 : 0,
        borderSkipped: false,
        grouped: false,
        barPercentage: thickness,
        categoryPercentage: 1,
      })),
    },
    options: {
      indexAxis: "y",
      responsive: false,
      animation: false,
      plugins: {
        title: { display: true, text: title, font: { size: fontSize * 1.25, weight: "bold" }, color: "#000" },
        legend: { position: "bottom", labels: { font: { size: fontSize }, color: "#000", boxWidth: 24 } },
      },
      scales: {
        x: {
          type: "linear",
          min: 0,
          title: { display: true, text: "time in the step (ms)", font: { size: fontSize }, color: "#000" },
          ticks: { font: { size: fontSize } },
        },
        y: { ticks: { font: { size: fontSize }, color: "#000" }, grid: { display: false } },
      },
    },
  };
}

/** Writes each forward/backward box's micro-batch ("F3", "B3") inside it when it fits. */
const microbatchLabels: Plugin<"bar"> = {
  id: "microbatchLabels",
  afterDatasetsDraw(chart) {
    const { ctx } = chart;
    ctx.save();
    ctx.fillStyle = "#fff";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    chart.data.datasets.forEach((dataset, i) => {
      chart.getDatasetMeta(i).data.forEach((bar, j) => {
        const text = (dataset.data[j] as unknown as { label: string }).label;
        if (!text || !(bar instanceof BarElement)) return;
        // a horizontal bar spans [base, x] at height y
        const { x, base, y, height } = bar.getProps(["x", "base", "y", "height"], true) as Record<
          string,
          number
        >;
        ctx.font = `${Math.min(16, Math.floor(height! * 0.45))}px sans-serif`;
        if (ctx.measureText(text).width + 4 < Math.abs(x! - base!)) ctx.fillText(text, (x! + base!) / 2, y!);
      });
    });
    ctx.restore();
  },
};

const WIDTH = 1600;
const ROW_HEIGHT = 90;
const FONT_SIZE = 16;

export interface TimelineOptions {
  /** The step to draw (default: the last traced step, past the first steps' one-off kernel compilations). */
  step?: number;
  title?: string;
}

/** Draws one step of the trace into a PNG; returns the step drawn and its bubble fraction. */
export function renderTimelinePng(
  trace: Trace,
  file: string,
  options: TimelineOptions = {},
): { step: number; bubble: number } {
  const step = options.step ?? tracedSteps(trace).at(-1)!;
  const spans = stepSpans(trace, step);
  const bubble = bubbleFraction(spans);
  const title = `${options.title ?? "timeline"}: step ${step}, bubble ${(100 * bubble).toFixed(1)}% of the ranks' pipeline time`;
  const ranks = new Set(spans.map((s) => s.pid)).size;
  const height = 200 + ranks * ROW_HEIGHT;
  const canvas = createCanvas(WIDTH, height);
  // chart.js expects a DOM canvas; the skia one offers the same getContext("2d") and size properties
  const config = timelineChart(spans, trace.tracks, title, FONT_SIZE);
  const chart = new Chart(canvas as unknown as ChartItem, {
    ...config,
    options: { ...config.options, devicePixelRatio: 1 },
    plugins: [microbatchLabels],
  });
  // chart.js leaves the background transparent: lay the chart on white
  const out = createCanvas(WIDTH, height);
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, WIDTH, height);
  ctx.drawImage(canvas, 0, 0);
  chart.destroy();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, out.toBuffer("image/png"));
  return { step, bubble };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = hideBin(process.argv);
  if (argv[0] === "--") argv.shift();
  const args = yargs(argv)
    .scriptName("timeline")
    .usage("$0 <trace.json> <out.png> [--step N] [--title text]\n\nDraws one step of a --trace run per rank.")
    .command("$0 <trace> <png>", false)
    .positional("trace", { type: "string", demandOption: true })
    .positional("png", { type: "string", demandOption: true })
    .options({
      step: { type: "number", describe: "the step to draw (default: the last one traced)" },
      title: { type: "string", describe: "the chart's title (default: the trace's file name)" },
    })
    .strict()
    .help()
    .parseSync();
  const cwd = process.env.INIT_CWD ?? process.cwd();
  const traceFile = path.resolve(cwd, args.trace!);
  const png = path.resolve(cwd, args.png!);
  const { step, bubble } = renderTimelinePng(readTrace(traceFile), png, {
    step: args.step,
    title: args.title ?? path.basename(traceFile),
  });
  console.log(`${png}: step ${step}, bubble ${(100 * bubble).toFixed(1)}%`);
}
