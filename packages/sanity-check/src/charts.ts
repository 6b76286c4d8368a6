// The sanity check's two charts (loss, |Δloss| vs baseline) as chart.js configurations, built once and
// drawn twice: into the PNG in Node and into the interactive HTML page. Plain data only (no functions),
// so they go into the page as JSON.
import type { ChartConfiguration } from "chart.js";

/** One layout's curve; the baseline's `diffs` are all 0 and not drawn. */
export interface CurveSeries {
  name: string;
  losses: number[];
  diffs: number[];
  baseline: boolean;
}

export type LineConfig = ChartConfiguration<"line", { x: number; y: number }[]>;

/** A log axis cannot show 0: a diff of exactly 0 (bitwise equal) is drawn at this floor instead. */
export const DIFF_FLOOR = 1e-9;

/**
 * Distinct on white and from the baseline's black: Tableau 10, then darker and lighter variants. The run
 * dashboard's page colours its runs with it too (it travels in the page's data).
 */
export const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
  "#aec7e8",
  "#ffbb78",
  "#98df8a",
  "#ff9896",
  "#c5b0d5",
  "#c49c94",
  "#f7b6d2",
  "#9edae5",
  "#dbdb8d",
  "#393b79",
];

const BASELINE_COLOR = "#000000";

/** The colour of the i-th non-baseline layout (cycling when there are more than the palette holds). */
export function layoutColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

function points(values: number[], floor = -Infinity): { x: number; y: number }[] {
  return values.map((y, i) => ({ x: i + 1, y: Math.max(y, floor) }));
}

function baseOptions(title: string, yTitle: string, fontSize: number): LineConfig["options"] {
  return {
    responsive: false,
    animation: false,
    parsing: false,
    normalized: true,
    plugins: {
      title: { display: true, text: title, font: { size: fontSize * 1.25, weight: "bold" }, color: "#000" },
      legend: { position: "right", labels: { font: { size: fontSize }, color: "#000", boxWidth: 24 } },
    },
    scales: {
      x: {
        type: "linear",
        min: 1,
        title: { display: true, text: "step", font: { size: fontSize }, color: "#000" },
        ticks: { font: { size: fontSize }, precision: 0 },
      },
      y: {
        title: { display: true, text: yTitle, font: { size: fontSize }, color: "#000" },
        ticks: { font: { size: fontSize } },
      },
    },
  };
}

/**
 * The loss curves (baseline thick and black, drawn beneath the others so they stay visible on top of it)
 * and each layout's |Δloss| against the baseline on a log axis, with the default tolerance as a dashed line.
 */
export function sanityCharts(
  series: readonly CurveSeries[],
  tolerance: number,
  fontSize: number,
): { loss: LineConfig; diff: LineConfig } {
  let colorIndex = 0;
  const styled = series.map((s) => ({
    ...s,
    color: s.baseline ? BASELINE_COLOR : layoutColor(colorIndex++),
  }));
  const steps = Math.max(1, ...series.map((s) => s.losses.length));

  const loss: LineConfig = {
    type: "line",
    data: {
      datasets: styled.map((s) => ({
        label: s.baseline ? `${s.name} (reference)` : s.name,
        data: points(s.losses),
        borderColor: s.color,
        backgroundColor: s.color,
        borderWidth: s.baseline ? 6 : 2,
        pointRadius: 0,
        // chart.js draws higher `order` first, i.e. underneath
        order: s.baseline ? 1 : 0,
      })),
    },
    options: baseOptions("Training loss per layout", "loss", fontSize),
  };

  const others = styled.filter((s) => !s.baseline);
  const diff: LineConfig = {
    type: "line",
    data: {
      datasets: [
        ...others.map((s) => ({
          label: s.name,
          data: points(s.diffs, DIFF_FLOOR),
          borderColor: s.color,
          backgroundColor: s.color,
          borderWidth: 2,
          pointRadius: 2,
        })),
        {
          label: `tolerance ${tolerance}`,
          data: [
            { x: 1, y: tolerance },
            { x: steps, y: tolerance },
          ],
          borderColor: "#555",
          backgroundColor: "#555",
          borderWidth: 1.5,
          borderDash: [8, 6],
          pointRadius: 0,
        },
      ],
    },
    options: baseOptions(
      `|Δloss| vs baseline (log scale; exactly 0 is drawn at ${DIFF_FLOOR})`,
      "|Δloss|",
      fontSize,
    ),
  };
  const y = diff.options!.scales!.y!;
  // down to below the floor, up to well above the tolerance so its line does not sit on the frame
  Object.assign(y, { type: "logarithmic", min: DIFF_FLOOR / 10, suggestedMax: 1 });
  // every power of ten gets its label (the tick callback blanks the others); auto-skip would drop some
  Object.assign(y.ticks!, { autoSkip: false });
  return { loss, diff };
}

/** Tick label for a log axis: only powers of ten, as 1e-3, so the labels do not crowd. */
export function powerOfTenLabel(value: number | string): string {
  const v = Number(value);
  const exponent = Math.log10(v);
  return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? `1e${Math.round(exponent)}` : "";
}
