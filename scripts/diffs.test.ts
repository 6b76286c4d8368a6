import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  checkDiffs,
  codeLineBudget,
  expectedDiffs,
  landedSteps,
  lessonFiles,
  stepFigures,
  writeDiffs,
} from "./diffs.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("docs/diffs", () => {
  it("every landed step's committed diff is current", () => {
    const problems = checkDiffs(ROOT).map((p) => `docs/diffs/${p.file}: ${p.problem}`);
    expect(problems, "the step diffs are out of date: run `pnpm diffs` and commit docs/diffs").toEqual([]);
  });

  it("every step's code diff is within its budget (1.3x the Python's patch; 450 lines beyond the tutorial)", () => {
    const figures = stepFigures(ROOT);
    expect(figures.length).toBeGreaterThan(0);
    const over = figures
      .filter((f) => f.changedLines > f.budget)
      .map((f) => `step ${f.n}: ${f.changedLines} changed code lines, budget ${f.budget}`);
    expect(over, "a step's diff should be its technique: move library code to packages/").toEqual([]);
  });
});

describe("the diff generator", () => {
  let root: string;
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "diffs-"));
    // git must not find a repository above the scratch folder
    process.env.GIT_CEILING_DIRECTORIES = path.dirname(root);
    write("step1_first/package.json", '{ "name": "step1" }\n');
    write("step1_first/train.ts", "const steps = 1;\nconsole.log(steps);\n");
    write("step1_first/model.ts", "export const model = 1;\n");
    write("step1_first/model.test.ts", "// a test\n");
    write("step2_second/package.json", '{ "name": "step2" }\n');
    write("step2_second/train.ts", "const steps = 2;\nconsole.log(steps);\n");
    write("step2_second/grid.ts", "export const grid = [1, 2];\n");
    write("step2_second/grid.test.ts", "// checks the grid\n");
    write("step2_second/grid.bench.ts", "// timing only\n");
    write("step2_second/nested/helper.ts", "export const h = 0;\n");
    write("step2_second/node_modules/dep/index.ts", "export {};\n");
    write("step2_second/README.md", "not a lesson file\n");
    // a step being built: no train.ts yet
    write("step3_third/grid.ts", "export const grid = [1, 2, 3];\n");
  });
  afterEach(() => {
    delete process.env.GIT_CEILING_DIRECTORIES;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("takes the code (.ts and package.json) and the tests apart, benchmarks and dependencies left out", () => {
    expect(lessonFiles(root, "step2_second")).toEqual([
      "grid.ts",
      "nested/helper.ts",
      "package.json",
      "train.ts",
    ]);
    expect(lessonFiles(root, "step2_second", "tests")).toEqual(["grid.test.ts"]);
  });

  it("counts changed code lines of .ts files against the budget", () => {
    const [fig] = stepFigures(root);
    // train.ts: 1 removed + 1 added; grid.ts +1; nested/helper.ts +1; model.ts removed (listed, not counted)
    expect(fig).toEqual({ n: 2, changedLines: 4, python: 89, budget: 115 });
    expect(codeLineBudget(3)).toBe(282);
    expect(codeLineBudget(9)).toBe(450);
  });

  it("diffs each landed step against the previous one, with root-relative paths and no timestamps", () => {
    const diffs = expectedDiffs(root);
    expect([...diffs.keys()]).toEqual(["step2.diff", "step2.tests.diff"]); // step 3 has no train.ts yet
    const text = diffs.get("step2.diff")!;
    expect(diffs.get("step2.tests.diff")).toContain("--- /dev/null\n+++ step2_second/grid.test.ts\n");
    expect(text).toMatch(/^Step 2 against step 1: step2_second\/ compared with step1_first\/\./);
    expect(text).toContain("  added    grid.ts ");
    expect(text).toContain("  removed  model.ts ");
    expect(text).toContain("Only in step1_first: model.ts\n");
    expect(text).toContain(
      "diff -u step1_first/train.ts step2_second/train.ts\n" +
        "--- step1_first/train.ts\n+++ step2_second/train.ts\n" +
        "@@ -1,2 +1,2 @@\n-const steps = 1;\n+const steps = 2;\n console.log(steps);\n",
    );
    expect(text).toContain("--- /dev/null\n+++ step2_second/nested/helper.ts\n@@ -0,0 +1 @@\n");
    expect(text).not.toMatch(/grid\.bench|node_modules|README|\d{4}-\d\d-\d\d/);
    // files in the same order every time: the header, then by path
    const order = [...text.matchAll(/^(?:diff -u \S+|Only in \S+) (\S+)$/gm)].map((m) => m[1]);
    expect(order).toEqual([
      "step2_second/grid.ts",
      "model.ts",
      "step2_second/nested/helper.ts",
      "step2_second/package.json",
      "step2_second/train.ts",
    ]);
    expect(expectedDiffs(root).get("step2.diff")).toBe(text);
  });

  it("finds a stale, a missing and an orphaned diff; writing fixes all three", () => {
    expect(checkDiffs(root)).toEqual([
      { file: "step2.diff", problem: "missing" },
      { file: "step2.tests.diff", problem: "missing" },
    ]);
    writeDiffs(root);
    expect(checkDiffs(root)).toEqual([]);

    write("step2_second/grid.ts", "export const grid = [2, 1];\n");
    expect(checkDiffs(root)).toEqual([{ file: "step2.diff", problem: "stale" }]);

    write("step3_third/train.ts", "// step 3 lands\n");
    write("docs/diffs/step7.diff", "from a step that is gone\n");
    expect(checkDiffs(root)).toEqual([
      { file: "step2.diff", problem: "stale" },
      { file: "step3.diff", problem: "missing" },
      { file: "step3.tests.diff", problem: "missing" },
      { file: "step7.diff", problem: "orphan" },
    ]);
    writeDiffs(root);
    expect(checkDiffs(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, "docs/diffs")).sort()).toEqual([
      "step2.diff",
      "step2.tests.diff",
      "step3.diff",
      "step3.tests.diff",
    ]);
  });

  it("in a git checkout, a step lands when git tracks its train.ts", () => {
    write("step3_third/train.ts", "// written, not added yet\n");
    const git = (...args: string[]) => spawnSync("git", ["-C", root, ...args], { encoding: "utf8" });
    expect(git("init", "-q").status).toBe(0);
    expect(git("add", "step1_first", "step2_second").status).toBe(0);
    expect(landedSteps(root).map((s) => s.dir)).toEqual(["step1_first", "step2_second"]);
    expect([...expectedDiffs(root).keys()]).toEqual(["step2.diff", "step2.tests.diff"]);
    expect(git("add", "step3_third/train.ts").status).toBe(0);
    expect([...expectedDiffs(root).keys()]).toEqual([
      "step2.diff",
      "step2.tests.diff",
      "step3.diff",
      "step3.tests.diff",
    ]);
  });
});
