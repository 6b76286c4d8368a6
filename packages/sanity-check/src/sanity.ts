// `pnpm sanity [--quick] [--steps N] [--only pattern]`: trains every layout of the steps that exist on one
// small shared config, compares each loss curve with the baseline's step by step, prints the table, draws
// assets/sanity_check.png and assets/sanity_check.html, and exits 1 if any layout fails.
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { CurveSeries } from "./charts.ts";
import { compareWithBaseline, formatTable, type Comparison } from "./compare.ts";
import {
  DEFAULT_TOLERANCE,
  findStep,
  LAYOUTS,
  selectLayouts,
  tolerance,
  trainFlags,
  worldSize,
  writeModelConfig,
} from "./layouts.ts";
import { readMetrics, type MetricsRow } from "./metrics.ts";
import { renderSanityPng } from "./plot.ts";
import { writeSanityHtml } from "./report.ts";
import { runTrain } from "./run.ts";

const root = path.resolve(import.meta.dirname, "../../..");
// pnpm runs the script from the repository root; paths on the command line are the user's
const cwd = process.env.INIT_CWD ?? process.cwd();

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .scriptName("sanity")
  .usage(
    "$0 [--quick] [--steps N] [--only pattern]\n\nRuns every parallel layout against the step-3 baseline.",
  )
  .options({
    quick: { type: "boolean", default: false, describe: "only the CI subset (a few minutes)" },
    steps: { type: "number", default: 20, describe: "optimizer steps per run" },
    only: { type: "string", describe: "regular expression on layout names (the baseline always runs)" },
    runs_dir: { type: "string", describe: "where the runs go (default: runs/sanity in the repository)" },
    assets_dir: { type: "string", describe: "where the PNG and HTML go (default: assets in the repository)" },
    timeout: { type: "number", default: 900, describe: "seconds before a run counts as hung" },
  })
  .check((a) => {
    if (!Number.isInteger(a.steps) || a.steps < 1)
      throw new Error(`--steps must be a positive integer, got ${a.steps}`);
    if (!(a.timeout > 0)) throw new Error(`--timeout must be > 0, got ${a.timeout}`);
    return true;
  })
  .strict()
  .version(false)
  .help()
  .parseSync();

const runsDir = args.runs_dir ? path.resolve(cwd, args.runs_dir) : path.join(root, "runs", "sanity");
const assetsDir = args.assets_dir ? path.resolve(cwd, args.assets_dir) : path.join(root, "assets");
let selected: ReturnType<typeof selectLayouts>;
try {
  selected = selectLayouts(root, { quick: args.quick, only: args.only });
} catch (err) {
  console.error(`sanity: ${(err as Error).message}`);
  process.exit(2);
}
// beside the runs: a folder without metrics, so the dashboard does not list it
const modelDir = path.join(runsDir, "shared_model");
writeModelConfig(modelDir);

const mode = args.quick ? "quick" : "full";
console.log(`sanity check (${mode}): ${selected.length} runs of ${args.steps} steps, into ${runsDir}`);
const missingSteps = [...new Set(LAYOUTS.map((l) => l.step))].filter((n) => !findStep(root, n));
if (missingSteps.length > 0)
  console.log(`steps not here yet (their layouts are skipped): ${missingSteps.join(", ")}`);

// Train them one after the other: the machine's cores are shared by each run's ranks.
const results: { metrics: MetricsRow[] | Error; input: (typeof selected)[number] }[] = [];
for (const [i, entry] of selected.entries()) {
  const { layout, step } = entry;
  const ranks = worldSize(layout);
  const label = `[${i + 1}/${selected.length}] ${layout.name} (${path.basename(step.dir)}, ${ranks} rank${ranks > 1 ? "s" : ""})`;
  process.stdout.write(`${label} ... `);
  const runDir = path.join(runsDir, layout.name);
  const outcome = await runTrain({
    root,
    packageName: step.packageName,
    flags: trainFlags(layout, args.steps, modelDir, runsDir),
    runDir,
    timeoutSeconds: args.timeout,
  });
  let metrics: MetricsRow[] | Error;
  if (outcome.error) metrics = outcome.error;
  else {
    try {
      metrics = readMetrics(path.join(runDir, "metrics.jsonl"));
    } catch (err) {
      metrics = err as Error;
    }
  }
  console.log(
    metrics instanceof Error
      ? `FAILED after ${outcome.seconds.toFixed(1)} s`
      : `${outcome.seconds.toFixed(1)} s`,
  );
  if (outcome.error) console.log(outcome.logTail.replace(/^/gm, "    "));
  results.push({ metrics, input: entry });
}

const baselineMetrics = results[0]!.metrics;
if (baselineMetrics instanceof Error) {
  console.log(`\nthe baseline failed, nothing to compare with: ${baselineMetrics.message}`);
  process.exit(1);
}
const comparisons: Comparison[] = results.map(({ metrics, input: { layout, step } }) =>
  compareWithBaseline(
    {
      name: layout.name,
      stepDir: path.basename(step.dir),
      ranks: worldSize(layout),
      tolerance: tolerance(layout),
      metrics,
    },
    baselineMetrics,
    args.steps,
  ),
);
console.log(`\n${formatTable(comparisons)}\n`);

const series: CurveSeries[] = results.flatMap(({ metrics, input }, i) =>
  metrics instanceof Error
    ? []
    : [
        {
          name: input.layout.name,
          losses: metrics.map((r) => r.loss),
          diffs: comparisons[i]!.diffs,
          baseline: i === 0,
        },
      ],
);
const png = path.join(assetsDir, "sanity_check.png");
const html = path.join(assetsDir, "sanity_check.html");
renderSanityPng(png, series, DEFAULT_TOLERANCE);
writeSanityHtml(html, {
  comparisons,
  series,
  tolerance: DEFAULT_TOLERANCE,
  summary: `${mode} run: ${selected.length} runs of ${args.steps} steps, each compared with ${selected[0]!.layout.name} step by step.`,
});
// relative to the user's folder when inside it, as they would type it
const shown = (file: string) => (path.relative(cwd, file).startsWith("..") ? file : path.relative(cwd, file));
console.log(`wrote ${shown(png)} and ${shown(html)}`);

// stdout only, so the verdict cannot overtake the table when both streams go to one terminal
const failed = comparisons.filter((c) => !c.pass);
if (failed.length > 0) {
  console.log(`${failed.length} of ${comparisons.length} failed: ${failed.map((c) => c.name).join(", ")}`);
  process.exitCode = 1;
} else console.log(`all ${comparisons.length} match the baseline`);
