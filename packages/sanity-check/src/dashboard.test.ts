import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHARTS, dashboardData, dashboardHtml, writeDashboard } from "./dashboard_html.ts";
import { findRuns } from "./metrics.ts";
import { writeSanityHtml } from "./report.ts";
import { startServer, type DashboardServer } from "./serve.ts";

// Debian's chromium (scripts/setup.sh installs it); never a browser that playwright would download
const CHROMIUM = "/usr/bin/chromium";
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium)
  console.warn(`SKIPPING the dashboard's browser tests: no ${CHROMIUM} (scripts/setup.sh installs it)`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-dashboard-"));
const runsDir = path.join(dir, "runs");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeRun(name: string, steps: number, layout?: string): void {
  const runDir = path.join(runsDir, name);
  fs.mkdirSync(runDir, { recursive: true });
  if (layout) fs.writeFileSync(path.join(runDir, "config.json"), JSON.stringify({ layout }));
  const lines = Array.from({ length: steps }, (_, i) =>
    JSON.stringify({
      step: i + 1,
      loss: 5 - i * 0.1,
      lr: 1e-3,
      trained_tokens: (i + 1) * 512,
      tokens_per_s: 1000 + i,
      tokens_per_s_per_rank: 500,
      // the trainer writes null for what it could not compute: such a step has no MFU point
      mfu: i === 0 ? null : 2.5,
      rss_bytes: 2e8,
      grad_norm: null,
      step_s: 0.2,
    }),
  );
  fs.writeFileSync(path.join(runDir, "metrics.jsonl"), lines.join("\n") + "\n");
}

writeRun("first", 10, "DP(1)-PP(1)-TP(1)-Rank(0)");
writeRun("second", 8);
writeRun(path.join("sanity", "tp2"), 10, "DP(1)-PP(1)-TP(2)-Rank(0)");
const RUNS = 3;

describe("the dashboard page", () => {
  it("embeds every run's columns and chart.js, and loads nothing from the network", () => {
    const { file, runs } = writeDashboard(runsDir);
    expect(file).toBe(path.join(runsDir, "dashboard.html"));
    expect(runs).toBe(RUNS);
    const html = fs.readFileSync(file, "utf8");
    expect(html).toContain("Chart.js v4");
    expect(html).not.toMatch(/\s(src|href)=/);
    const data = dashboardData(runsDir, findRuns(runsDir));
    expect(data.runs.map((r) => r.name)).toEqual(["first", "sanity/tp2", "second"]);
    expect(data.runs[0]!.layout).toBe("DP(1)-PP(1)-TP(1)-Rank(0)");
    expect(data.runs[2]!.columns.loss).toHaveLength(8);
    expect(data.runs[0]!.columns.mfu[0]).toBeNull();
  });

  it("keeps a run's name from closing the page's tags", () => {
    const html = dashboardHtml(dashboardData("</script><b>", []));
    expect(html).not.toContain("</script><b>");
    expect(html).toContain("&#60;/script&#62;&#60;b&#62;");
  });

  it("fails on a missing runs folder", () => {
    expect(() => writeDashboard(path.join(dir, "nope"))).toThrow(/nope: no such directory/);
  });
});

describe.skipIf(!hasChromium)("the dashboard in headless Chromium", () => {
  let context: BrowserContext;
  let server: DashboardServer;
  const problems: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    server = await startServer(runsDir, 0);
    context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(dir, "profile-")), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  afterAll(async () => {
    await context?.close();
    await server?.close();
  });

  async function open(url: string): Promise<Page> {
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning")
        problems.push(`${url}: console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`${url}: ${e.message}`));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url);
    return page;
  }

  /** Per chart: how many series it draws now (its visible datasets with points). */
  const visibleSeries = (page: Page) =>
    page.evaluate(() =>
      Object.values((globalThis as any).Chart.instances).map(
        (chart: any) =>
          chart.data.datasets.filter((d: any, i: number) => chart.isDatasetVisible(i) && d.data.length > 0)
            .length,
      ),
    );

  it("draws every run in every chart, served on 127.0.0.1, and follows the checkboxes and x toggle", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await open(server.url);
    await page.waitForFunction(
      (n) => Object.keys((globalThis as any).Chart.instances).length === n,
      CHARTS.length,
    );
    expect(await visibleSeries(page)).toEqual(CHARTS.map(() => RUNS));
    expect(await page.locator("#runs input").count()).toBe(RUNS);

    await page.getByLabel("second", { exact: false }).uncheck();
    expect(await visibleSeries(page)).toEqual(CHARTS.map(() => RUNS - 1));
    await page.getByRole("button", { name: "none" }).click();
    expect(await visibleSeries(page)).toEqual(CHARTS.map(() => 0));
    await page.getByRole("button", { name: "all" }).click();

    // against tokens: the first loss point of "first" sits at 512 tokens; the MFU chart skips the null step
    await page.getByLabel("tokens").check();
    const firstPoints = await page.evaluate(() =>
      Object.values((globalThis as any).Chart.instances).map((c: any) => [
        c.data.datasets[0].data[0].x,
        c.options.scales.x.title.text,
      ]),
    );
    expect(firstPoints[0]).toEqual([512, "tokens"]);
    expect(firstPoints[CHARTS.indexOf("mfu")]).toEqual([1024, "tokens"]);

    // a new run appears by itself: the served page polls data.json
    writeRun("third", 3);
    await page.waitForFunction(
      () => (globalThis as any).document.querySelectorAll("#runs input").length === 4,
      null,
      {
        timeout: 60_000, // a poll every few seconds; a busy machine may be slow to render
      },
    );
    expect(await visibleSeries(page)).toEqual(CHARTS.map(() => RUNS + 1));
    fs.rmSync(path.join(runsDir, "third"), { recursive: true });
  });

  it("opens from disk with the same series", async () => {
    writeDashboard(runsDir);
    const page = await open(`file://${path.join(runsDir, "dashboard.html")}`);
    await page.waitForFunction(
      (n) => Object.keys((globalThis as any).Chart.instances).length === n,
      CHARTS.length,
    );
    expect(await visibleSeries(page)).toEqual(CHARTS.map(() => RUNS));
  });

  it("shows the sanity check's page from disk: the loss and |Δloss| charts", async () => {
    const file = path.join(dir, "sanity_check.html");
    const series = ["baseline", "tp2", "dp2"].map((name, i) => ({
      name,
      losses: [5, 4.5, 4.25],
      diffs: [0, i * 1e-5, i * 2e-5],
      baseline: i === 0,
    }));
    writeSanityHtml(file, { comparisons: [], series, tolerance: 1e-3, summary: "synthetic" });
    const page = await open(`file://${file}`);
    await page.waitForFunction(() => Object.keys((globalThis as any).Chart.instances).length === 2);
    // loss: 3 layouts; |Δloss|: 2 layouts (not the baseline) and the tolerance line
    expect(await visibleSeries(page)).toEqual([3, 3]);
  });

  it("skips a malformed line with a warning naming file:line, and still shows every run", async () => {
    const bad = path.join(runsDir, "broken", "metrics.jsonl");
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    fs.writeFileSync(bad, '{"step": 1, "loss": 5}\n{"step": 2, "loss": "x"}\n');
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (m: string) => warnings.push(m);
    try {
      expect((await fetch(server.url)).status).toBe(200);
      const data = (await (await fetch(`${server.url}data.json`)).json()) as { runs: { name: string }[] };
      expect(data.runs.map((r) => r.name)).toEqual(["broken", "first", "sanity/tp2", "second"]);
    } finally {
      console.warn = warn;
    }
    expect(warnings).toContain(`skipped ${bad}:2: "loss" must be a number`);
    fs.rmSync(path.dirname(bad), { recursive: true });
    expect((await fetch(`${server.url}elsewhere`)).status).toBe(404);
  });

  it("logged no console errors and fetched nothing but its own pages", () => {
    expect(problems).toEqual([]);
    const own = (url: string) => url.startsWith(server.url) || url.startsWith("file://");
    expect(requests.filter((u) => !own(u))).toEqual([]);
    expect(requests.some((u) => u.endsWith("/data.json"))).toBe(true);
  });
});
