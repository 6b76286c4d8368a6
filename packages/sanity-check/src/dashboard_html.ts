// The run dashboard's page: every run's metrics, embedded as columns, and the page script that plots them.
import fs from "node:fs";
import path from "node:path";
import { PALETTE } from "./charts.ts";
import { escapeHtml, htmlPage } from "./html.ts";
import { findRuns, type MetricsRow, type Run } from "./metrics.ts";

/** The metrics the page plots, plus the two x axes it offers. */
export const COLUMNS = ["step", "trained_tokens", "loss", "tokens_per_s", "mfu", "rss_bytes", "lr"] as const;

/** The charts the page draws, in order; each has one series per selected run. */
export const CHARTS = ["loss", "tokens_per_s", "mfu", "rss_bytes", "lr"] as const;

export interface DashboardRun {
  name: string;
  /** The trainer's description of the process grid, when its config.json has one. */
  layout: string | null;
  columns: Record<(typeof COLUMNS)[number], (number | null)[]>;
}

export interface DashboardData {
  runsDir: string;
  runs: DashboardRun[];
  /** The series colours, the sanity plot's. */
  palette: readonly string[];
}

export function dashboardData(runsDir: string, runs: readonly Run[]): DashboardData {
  return {
    runsDir,
    palette: PALETTE,
    runs: runs.map((run) => ({
      name: run.name,
      layout: typeof run.config.layout === "string" ? run.config.layout : null,
      columns: Object.fromEntries(
        COLUMNS.map((c) => [c, run.metrics.map((row: MetricsRow) => row[c])]),
      ) as DashboardRun["columns"],
    })),
  };
}

export function dashboardHtml(data: DashboardData): string {
  return htmlPage({
    title: `runs: ${data.runsDir}`,
    style: `
header { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: baseline; }
h1 { font-size: 1.3rem; margin: 0; }
#runs { display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; margin: 0.8rem 0; }
#runs label { white-space: nowrap; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; border-radius: 2px; }
#charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }
.chart { position: relative; height: 320px; }
#empty { color: #666; }`,
    body: `<header>
<h1>Runs in ${escapeHtml(data.runsDir)}</h1>
<span>x axis:
<label><input type="radio" name="xaxis" value="step" checked> step</label>
<label><input type="radio" name="xaxis" value="trained_tokens"> tokens</label>
</span>
<span><button id="all" type="button">all</button> <button id="none" type="button">none</button></span>
</header>
<div id="runs"></div>
<p id="empty" hidden>No runs yet: a train script writes runs_dir/run_name/metrics.jsonl.</p>
<div id="charts"></div>`,
    data,
    script: "dashboard_page.js",
  });
}

/** Reads the runs and writes runsDir/dashboard.html; returns the file and how many runs it shows. */
export function writeDashboard(runsDir: string): { file: string; runs: number } {
  const data = dashboardData(runsDir, findRuns(runsDir));
  const file = path.join(runsDir, "dashboard.html");
  fs.writeFileSync(file, dashboardHtml(data));
  return { file, runs: data.runs.length };
}
