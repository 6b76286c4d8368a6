// The run dashboard: one chart per metric, one series per selected run, against step or tokens.
// When served (`pnpm dashboard --serve`) it also fetches data.json every few seconds, so runs that are
// still training grow on screen.
/* global Chart, document, location */
"use strict";

const CHARTS = [
  { key: "loss", title: "loss", scale: 1 },
  { key: "tokens_per_s", title: "tokens/s", scale: 1 },
  { key: "mfu", title: "MFU (%)", scale: 1 },
  { key: "rss_bytes", title: "memory: RSS of rank 0 (MB)", scale: 1e-6 },
  { key: "lr", title: "learning rate", scale: 1 },
];
const X_TITLES = { step: "step", trained_tokens: "tokens" };
const REFRESH_MS = 5000;

const state = {
  data: JSON.parse(document.getElementById("data").textContent),
  x: "step",
  // by name, so a run keeps its check mark when the served data refreshes
  hidden: new Set(),
  charts: [],
};

const colorOf = (i) => state.data.palette[i % state.data.palette.length];

/** A run's points for one chart; steps without the value (null in the metrics) are left out. */
function points(run, chart) {
  const xs = run.columns[state.x];
  const ys = run.columns[chart.key];
  const out = [];
  ys.forEach((y, i) => {
    if (y !== null && xs[i] !== null) out.push({ x: xs[i], y: y * chart.scale });
  });
  return out;
}

function datasets(chart) {
  return state.data.runs.map((run, i) => ({
    label: run.name,
    data: points(run, chart),
    borderColor: colorOf(i),
    backgroundColor: colorOf(i),
    borderWidth: 2,
    pointRadius: 0,
    hidden: state.hidden.has(run.name),
  }));
}

function renderRunList() {
  const box = document.getElementById("runs");
  box.replaceChildren();
  state.data.runs.forEach((run, i) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = run.name;
    input.checked = !state.hidden.has(run.name);
    input.addEventListener("change", () => {
      if (input.checked) state.hidden.delete(run.name);
      else state.hidden.add(run.name);
      update();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colorOf(i);
    label.append(input, swatch, run.layout ? `${run.name} (${run.layout})` : run.name);
    box.append(label);
  });
  document.getElementById("empty").hidden = state.data.runs.length > 0;
}

function renderCharts() {
  for (const chart of state.charts) chart.destroy();
  const grid = document.getElementById("charts");
  grid.replaceChildren();
  state.charts = CHARTS.map((spec) => {
    const box = document.createElement("div");
    box.className = "chart";
    const canvas = document.createElement("canvas");
    box.append(canvas);
    grid.append(box);
    return new Chart(canvas, {
      type: "line",
      data: { datasets: datasets(spec) },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        plugins: {
          title: { display: true, text: spec.title },
          // the checkboxes above select runs for every chart at once
          legend: { display: false },
        },
        scales: {
          x: { type: "linear", title: { display: true, text: X_TITLES[state.x] } },
          y: { title: { display: true, text: spec.title } },
        },
      },
    });
  });
}

/** Redraws every chart from the state (selected runs, x axis) without rebuilding it. */
function update() {
  state.charts.forEach((chart, i) => {
    chart.data.datasets = datasets(CHARTS[i]);
    chart.options.scales.x.title.text = X_TITLES[state.x];
    chart.update();
  });
}

function setAll(visible) {
  state.hidden = visible ? new Set() : new Set(state.data.runs.map((r) => r.name));
  for (const input of document.querySelectorAll("#runs input")) input.checked = visible;
  update();
}

for (const radio of document.querySelectorAll('input[name="xaxis"]')) {
  radio.addEventListener("change", () => {
    state.x = radio.value;
    update();
  });
}
document.getElementById("all").addEventListener("click", () => setAll(true));
document.getElementById("none").addEventListener("click", () => setAll(false));
renderRunList();
renderCharts();

async function refresh() {
  const response = await fetch("data.json", { cache: "no-store" });
  if (!response.ok) return;
  const data = await response.json();
  const names = (d) => d.runs.map((r) => r.name).join("\n");
  const sameRuns = names(data) === names(state.data);
  state.data = data;
  if (!sameRuns) renderRunList();
  update();
}
if (location.protocol.startsWith("http")) {
  // a stopped server is no error: the page keeps showing the last data it got
  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
}
