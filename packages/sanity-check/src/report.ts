// assets/sanity_check.html: the results table and the two charts, interactive (hover, hide a layout by
// clicking its legend entry).
import fs from "node:fs";
import path from "node:path";
import { sanityCharts, type CurveSeries } from "./charts.ts";
import { TABLE_HEADER, tableCells, type Comparison } from "./compare.ts";
import { escapeHtml, htmlPage } from "./html.ts";

function resultsTable(comparisons: readonly Comparison[]): string {
  const rows = comparisons.map((c) => {
    const cells = tableCells(c);
    if (!c.pass) cells[TABLE_HEADER.indexOf("result")] = `FAIL: ${c.reason}`;
    const tds = cells.map((cell) => `<td>${escapeHtml(cell)}</td>`).join("");
    return `<tr class="${c.pass ? "pass" : "fail"}">${tds}</tr>`;
  });
  const ths = TABLE_HEADER.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  return `<table><thead><tr>${ths}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

export interface SanityReport {
  comparisons: readonly Comparison[];
  series: readonly CurveSeries[];
  tolerance: number;
  /** One line on how the runs were made (steps, quick or full). */
  summary: string;
}

export function writeSanityHtml(file: string, report: SanityReport): void {
  const { loss, diff } = sanityCharts(report.series, report.tolerance, 13);
  const failed = report.comparisons.filter((c) => !c.pass).length;
  const verdict = failed === 0 ? "all layouts match the baseline" : `${failed} layout(s) failed`;
  const html = htmlPage({
    title: "picotron-ts sanity check",
    style: `
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
tr.fail td { background: #fdd; }
.chart { position: relative; height: 420px; max-width: 1200px; margin-bottom: 1.5rem; }`,
    body: `<h1>Sanity check: ${escapeHtml(verdict)}</h1>
<p>${escapeHtml(report.summary)}</p>
${resultsTable(report.comparisons)}
<div class="chart"><canvas id="loss"></canvas></div>
<div class="chart"><canvas id="diff"></canvas></div>`,
    data: { loss, diff },
    script: "sanity_page.js",
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, html);
}
