// `pnpm diffs`: writes docs/diffs/stepN.diff, the unified diff of step N-1's code against step N's, as the
// tutorial's patch_step_N.diff: read one file to see everything a step adds. The step's tests go to
// docs/diffs/stepN.tests.diff. It then prints, per step, the changed code lines next to the Python patch's,
// and the budget a test holds each step to (a step's diff is its technique, not the machinery around it).
//
// Which steps. A step takes part once it has landed: its folder (stepN_*) has a train.ts that git tracks
// (committed, or at least staged). Outside a git checkout (a source archive), a train.ts on disk is enough.
// A step still being built, with no train.ts yet or one that exists only in its engineer's working tree, is
// skipped, and so is its successor's diff, so the staleness test (diffs.test.ts) does not fail while they
// work; as soon as the step lands, the test asks for its diff.
//
// Which files. The code: `*.ts` and `package.json`, without the tests and the benchmarks (`*.bench.ts`:
// speed tooling, not the lesson). The tests: `*.test.ts` and their `*.worker.ts` helpers (they show how
// the step proves it works). Nothing under node_modules, hidden folders or build, run and checkpoint output.
//
// Changed code lines: the `+` and `-` lines of the code diff's `.ts` files, without file headers (the
// measure of the Python figures below, which count the `+`/`-` lines of the tutorial's patch_step_N.diff).
//
// Stable output. Paths are relative to the repository root and sorted, there are no timestamps, and the
// system's `diff -u` runs in the C locale. A file only the older step has is listed ("Only in ..."), not
// printed line by line: most are tools a step leaves behind (step 1's golden check), not its lesson.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Where the diffs go, relative to the repository root. */
export const DIFFS_DIR = path.join("docs", "diffs");

/** Changed lines of the Python tutorial's patch_step_N.diff (`+`/`-` lines without file headers). */
export const PYTHON_CHANGED_LINES: Readonly<Record<number, number>> = {
  2: 89,
  3: 217,
  4: 321,
  5: 67,
  6: 230,
  7: 168,
  8: 123,
};
/** A step's code diff may be this much longer than the Python's: TypeScript's types and our comments. */
export const PYTHON_RATIO_LIMIT = 1.3;
/** Steps the Python tutorial does not have (context parallelism, ZeRO): a fixed budget. */
export const BEYOND_TUTORIAL_LIMIT = 450;

/** The most changed code lines step n may have against step n - 1. */
export function codeLineBudget(n: number): number {
  const python = PYTHON_CHANGED_LINES[n];
  return python === undefined ? BEYOND_TUTORIAL_LIMIT : Math.floor(python * PYTHON_RATIO_LIMIT);
}

export type FileKind = "code" | "tests";
const isTestFile = (name: string) => name.endsWith(".test.ts") || name.endsWith(".worker.ts");

const STEP_DIR = /^step(\d+)_[A-Za-z0-9_]+$/;
const SKIPPED_DIRS = new Set(["node_modules", "build", "dist", "runs", "checkpoints", "coverage"]);

export interface StepFolder {
  n: number;
  /** The folder's name, which is also its path relative to the root: "step3_dataloader". */
  dir: string;
}

/** Every stepN_* folder under root, landed or not, by step number. */
export function findSteps(root: string): StepFolder[] {
  const steps: StepFolder[] = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    const m = STEP_DIR.exec(entry.name);
    if (entry.isDirectory() && m) steps.push({ n: Number(m[1]), dir: entry.name });
  }
  steps.sort((a, b) => a.n - b.n || a.dir.localeCompare(b.dir));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]!.n === steps[i - 1]!.n) {
      throw new Error(`two folders for step ${steps[i]!.n}: ${steps[i - 1]!.dir} and ${steps[i]!.dir}`);
    }
  }
  return steps;
}

/** The step folders whose train.ts git tracks, or null when root is not in a git checkout. */
function trackedTrainScripts(root: string): Set<string> | null {
  const git = (...args: string[]) =>
    spawnSync("git", ["-C", root, ...args], { encoding: "utf8", maxBuffer: 16 << 20 });
  const top = git("rev-parse", "--show-toplevel");
  if (top.status !== 0 || top.error) return null;
  const listed = git("ls-files", "-z", "--", "step*_*/train.ts");
  if (listed.status !== 0) return null;
  return new Set(
    listed.stdout
      .split("\0")
      .filter(Boolean)
      .map((p) => path.dirname(p)),
  );
}

/** The steps that have landed (see the top of this file). */
export function landedSteps(root: string): StepFolder[] {
  const tracked = trackedTrainScripts(root);
  return findSteps(root).filter((s) =>
    tracked ? tracked.has(s.dir) : fs.existsSync(path.join(root, s.dir, "train.ts")),
  );
}

/** The code (or test) files of one step folder, relative to it, sorted, with "/" separators. */
export function lessonFiles(root: string, dir: string, kind: FileKind = "code"): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(root, dir, rel), { withFileTypes: true })) {
      const name = entry.name;
      const child = rel ? `${rel}/${name}` : name;
      // symlinks (pnpm's node_modules entries) are neither files nor directories here: never followed
      if (entry.isDirectory()) {
        if (!name.startsWith(".") && !SKIPPED_DIRS.has(name)) walk(child);
      } else if (entry.isFile()) {
        const wanted = name === "package.json" || (name.endsWith(".ts") && !name.endsWith(".d.ts"));
        if (wanted && !name.endsWith(".bench.ts") && isTestFile(name) === (kind === "tests")) out.push(child);
      }
    }
  };
  walk("");
  return out.sort();
}

/** `diff -u` of two files (null: the file does not exist), labelled with root-relative paths. */
function unifiedDiff(root: string, from: string | null, to: string | null): string {
  const file = (p: string | null) => (p === null ? "/dev/null" : path.join(root, p));
  const label = (p: string | null) => p ?? "/dev/null";
  const r = spawnSync("diff", ["-u", "--label", label(from), "--label", label(to), file(from), file(to)], {
    encoding: "utf8",
    env: { ...process.env, LC_ALL: "C" },
    maxBuffer: 64 << 20,
  });
  if (r.error) {
    throw new Error(`could not run diff (${r.error.message}); install diffutils (apt-get install diffutils)`);
  }
  // 0: same, 1: different, 2: trouble
  if (r.status !== 0 && r.status !== 1) throw new Error(`diff ${label(from)} ${label(to)}: ${r.stderr}`);
  return r.stdout;
}

/** Lines added and removed in one file's unified diff (the hunks only, not the ---/+++ header). */
function countChanges(diff: string): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  let inHunks = false;
  for (const line of diff.split("\n")) {
    if (line.startsWith("@@")) inHunks = true;
    else if (inHunks && line.startsWith("+")) added++;
    else if (inHunks && line.startsWith("-")) removed++;
  }
  return { added, removed };
}

/** The whole diff file of step `to` against step `from`: a summary, then one unified diff per file. */
export function stepDiff(root: string, from: StepFolder, to: StepFolder, kind: FileKind = "code"): string {
  return diffOfStep(root, from, to, kind).text;
}

/** The diff file's text and its changed code lines (`.ts` files' `+`/`-` lines). */
function diffOfStep(
  root: string,
  from: StepFolder,
  to: StepFolder,
  kind: FileKind,
): { text: string; changedLines: number } {
  let changedLines = 0;
  const before = new Set(lessonFiles(root, from.dir, kind));
  const after = new Set(lessonFiles(root, to.dir, kind));
  const names = [...new Set([...before, ...after])].sort();
  const summary: string[] = [];
  const body: string[] = [];
  const width = Math.max(0, ...names.map((n) => n.length));
  for (const name of names) {
    const a = `${from.dir}/${name}`;
    const b = `${to.dir}/${name}`;
    if (!after.has(name)) {
      summary.push(`  removed  ${name.padEnd(width)}  (only in ${from.dir})`);
      body.push(`Only in ${from.dir}: ${name}\n`);
      continue;
    }
    const isNew = !before.has(name);
    const diff = unifiedDiff(root, isNew ? null : a, b);
    if (diff === "") continue;
    const { added, removed } = countChanges(diff);
    if (name.endsWith(".ts")) changedLines += added + removed;
    const counts = isNew ? `+${added}` : `+${added} -${removed}`;
    summary.push(`  ${isNew ? "added  " : "changed"}  ${name.padEnd(width)}  ${counts}`);
    body.push(`diff -u ${isNew ? "/dev/null" : a} ${b}\n${diff}`);
  }
  const header = [
    `Step ${to.n} against step ${from.n}: ${to.dir}/ compared with ${from.dir}/.`,
    kind === "code"
      ? "Written by `pnpm diffs`; do not edit. Files: the code (*.ts without tests and benchmarks) and package.json;\n" +
        `the tests are in step${to.n}.tests.diff. Changed code lines: ${changedLines}.`
      : `Written by \`pnpm diffs\`; do not edit. Files: the tests (*.test.ts, *.worker.ts); the code is in step${to.n}.diff.`,
    "",
    ...(summary.length > 0 ? summary : ["  (no differences)"]),
    "",
    "",
  ].join("\n");
  return { text: header + body.join(""), changedLines };
}

export interface StepFigure {
  n: number;
  changedLines: number;
  python: number | null;
  budget: number;
}

/** Changed code lines of every landed step against the previous one, with the Python's and the budget. */
export function stepFigures(root: string): StepFigure[] {
  const landed = landedSteps(root);
  const byNumber = new Map(landed.map((s) => [s.n, s]));
  const out: StepFigure[] = [];
  for (const step of landed) {
    const prev = byNumber.get(step.n - 1);
    if (!prev) continue;
    const { changedLines } = diffOfStep(root, prev, step, "code");
    out.push({
      n: step.n,
      changedLines,
      python: PYTHON_CHANGED_LINES[step.n] ?? null,
      budget: codeLineBudget(step.n),
    });
  }
  return out;
}

/** The table `pnpm diffs` prints. */
export function figuresTable(figures: StepFigure[]): string {
  const rows = figures.map((f) => {
    const ratio = f.python ? `${(f.changedLines / f.python).toFixed(2)}x` : "—";
    const verdict = f.changedLines <= f.budget ? "ok" : "OVER BUDGET";
    return `  ${String(f.n).padEnd(4)}  ${String(f.changedLines).padStart(13)}  ${String(f.python ?? "—").padStart(14)}  ${ratio.padStart(6)}  ${String(f.budget).padStart(6)}  ${verdict}`;
  });
  return ["  step  changed lines  Python's patch   ratio  budget", ...rows].join("\n");
}

/** What `pnpm diffs` writes: file name in docs/diffs -> contents, for each landed step after a landed one. */
export function expectedDiffs(root: string): Map<string, string> {
  const landed = landedSteps(root);
  const byNumber = new Map(landed.map((s) => [s.n, s]));
  const out = new Map<string, string>();
  for (const step of landed) {
    const prev = byNumber.get(step.n - 1);
    if (prev) {
      out.set(`step${step.n}.diff`, stepDiff(root, prev, step, "code"));
      out.set(`step${step.n}.tests.diff`, stepDiff(root, prev, step, "tests"));
    }
  }
  return out;
}

export interface DiffProblem {
  file: string;
  problem: "missing" | "stale" | "orphan";
}

/** Compares the committed diffs with freshly generated ones; an empty list means all are current. */
export function checkDiffs(root: string): DiffProblem[] {
  const dir = path.join(root, DIFFS_DIR);
  const expected = expectedDiffs(root);
  const problems: DiffProblem[] = [];
  for (const [name, text] of expected) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) problems.push({ file: name, problem: "missing" });
    else if (fs.readFileSync(file, "utf8") !== text) problems.push({ file: name, problem: "stale" });
  }
  for (const name of existingDiffs(dir)) {
    if (!expected.has(name)) problems.push({ file: name, problem: "orphan" });
  }
  return problems;
}

/** The stepN.diff files in dir. */
function existingDiffs(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /^step\d+(\.tests)?\.diff$/.test(f))
    .sort();
}

/** Writes the diffs that changed and removes those of steps that no longer exist; returns what it did. */
export function writeDiffs(root: string): string[] {
  const dir = path.join(root, DIFFS_DIR);
  fs.mkdirSync(dir, { recursive: true });
  const expected = expectedDiffs(root);
  const log: string[] = [];
  for (const [name, text] of expected) {
    const file = path.join(dir, name);
    const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : null;
    if (old === text) {
      log.push(`unchanged ${DIFFS_DIR}/${name}`);
      continue;
    }
    fs.writeFileSync(file, text);
    log.push(`${old === null ? "wrote    " : "updated  "} ${DIFFS_DIR}/${name}`);
  }
  for (const name of existingDiffs(dir)) {
    if (!expected.has(name)) {
      fs.rmSync(path.join(dir, name));
      log.push(`removed   ${DIFFS_DIR}/${name}`);
    }
  }
  return log;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const root = path.resolve(import.meta.dirname, "..");
  const landed = landedSteps(root);
  const landedDirs = new Set(landed.map((s) => s.dir));
  for (const line of writeDiffs(root)) console.log(line);
  console.log(
    `\nchanged code lines per step (budget: ${PYTHON_RATIO_LIMIT}x the Python's, ${BEYOND_TUTORIAL_LIMIT} beyond the tutorial)`,
  );
  console.log(figuresTable(stepFigures(root)));
  for (const s of findSteps(root)) {
    if (landedDirs.has(s.dir)) {
      if (s.n > 1 && !landed.some((p) => p.n === s.n - 1))
        console.log(`skipped   ${s.dir}: step ${s.n - 1} has not landed, nothing to compare it with`);
    } else {
      const why = fs.existsSync(path.join(root, s.dir, "train.ts"))
        ? "train.ts not in git yet"
        : "no train.ts yet";
      console.log(`skipped   ${s.dir}: not landed (${why})`);
    }
  }
}
