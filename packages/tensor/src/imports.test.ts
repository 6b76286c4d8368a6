// The package's import graph, read from the sources: no cycles (a cycle makes module evaluation order
// decide whether a class is defined yet), and autograd never reaches the kernel layer.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = path.dirname(fileURLToPath(import.meta.url));

/** Relative imports that exist at run time (`import type` / `export type` are erased by TypeScript). */
function runtimeImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^"';]*?\sfrom\s+)?["']([^"']+)["']/gm;
  for (const m of source.matchAll(re)) {
    const spec = m[4]!;
    if (m[2] || !spec.startsWith(".")) continue;
    out.push(spec);
  }
  return out;
}

/** module (path relative to src) -> the modules it imports. */
function importGraph(): Map<string, string[]> {
  const files = (fs.readdirSync(SRC, { recursive: true }) as string[]).filter(
    (f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith(".bench.ts"),
  );
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps = runtimeImports(fs.readFileSync(path.join(SRC, f), "utf8")).map((spec) =>
      path.relative(SRC, path.resolve(SRC, path.dirname(f), spec)),
    );
    graph.set(f, deps);
  }
  return graph;
}

/** One cycle as a path a -> b -> ... -> a, or null (depth-first search with an on-stack set). */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (m: string): string[] | null => {
    const at = stack.indexOf(m);
    if (at >= 0) return [...stack.slice(at), m];
    if (done.has(m)) return null;
    stack.push(m);
    for (const d of graph.get(m) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    done.add(m);
    return null;
  };
  for (const m of graph.keys()) {
    const c = visit(m);
    if (c) return c;
  }
  return null;
}

function reachable(graph: Map<string, string[]>, from: string): Set<string> {
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length > 0) {
    for (const d of graph.get(todo.pop()!) ?? []) {
      if (!seen.has(d)) {
        seen.add(d);
        todo.push(d);
      }
    }
  }
  return seen;
}

describe("import graph of packages/tensor", () => {
  it("reads runtime imports and skips type-only ones", () => {
    const src = [
      'import { a } from "./a.ts";',
      'import type { B } from "./b.ts";',
      'export { c } from "./c.ts";',
      'export type { D } from "./d.ts";',
      'import "./e.ts";',
      'import fs from "node:fs";',
    ].join("\n");
    expect(runtimeImports(src)).toEqual(["./a.ts", "./c.ts", "./e.ts"]);
  });

  it("finds a cycle when there is one", () => {
    const g = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
    ]);
    expect(findCycle(g)).toEqual(["a", "b", "c", "a"]);
  });

  it("has no cycles", () => {
    const graph = importGraph();
    expect(graph.get("index.ts")?.length).toBeGreaterThan(5);
    expect(findCycle(graph)).toBeNull();
  });

  it("keeps autograd and tensor away from the kernel layer", () => {
    const graph = importGraph();
    for (const m of ["autograd.ts", "tensor.ts"]) {
      const kernels = [...reachable(graph, m)].filter((d) => d.startsWith(`kernels${path.sep}`));
      expect(kernels, `${m} reaches ${kernels.join(", ")}`).toEqual([]);
    }
  });
});
