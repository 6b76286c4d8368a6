// An opt-in profiler: where does a training step spend its time? While profile() runs, every op's
// forward, every autograd backward function, gradient accumulation and the optimizer step are timed,
// grouped by op and output shape (so the vocabulary projection shows apart from the layers' linears).
// Times are "self" times: an op that calls another op is not charged for the inner one, so the rows add
// up to the total. Off by default: then timed() costs one test.
//   const report = profile(() => { lossFn(model.forward(x), y).backward(); opt.step(); });
//   console.log(report.table());

interface Entry {
  calls: number;
  ms: number;
}

let stats: Map<string, Entry> | null = null;
/** Time spent in timed() calls nested inside the current one (subtracted from its self time). */
let childMs = 0;

/**
 * Runs fn, charging its self time to a row when a profile() is running. `name` is a function when the
 * row's name costs something to build (it is only called while profiling), or may depend on the result.
 */
export function timed<T>(name: string | ((result: T) => string), fn: () => T): T {
  if (!stats) return fn();
  const outerChildMs = childMs;
  childMs = 0;
  const start = performance.now();
  let result: T | undefined;
  try {
    result = fn();
    return result;
  } finally {
    const total = performance.now() - start;
    const key = typeof name === "string" ? name : name(result as T);
    const e = stats.get(key) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += total - childMs;
    stats.set(key, e);
    childMs = outerChildMs + total;
  }
}

/** Wraps an op so that each call is timed() under `name` and the shape of its output. */
export function profiled<A extends unknown[], R>(name: string, op: (...args: A) => R): (...args: A) => R {
  const label = (out: R) => {
    const shape = (out as { shape?: readonly number[] } | undefined)?.shape;
    return shape ? `${name} [${shape.join(", ")}]` : name;
  };
  return (...args: A) => timed(label, () => op(...args));
}

export interface ProfileRow {
  name: string;
  calls: number;
  ms: number;
}

export class ProfileReport {
  constructor(
    /** Slowest first; "(other)" is the time outside every timed op (model code, views, GC pauses). */
    readonly rows: ProfileRow[],
    readonly totalMs: number,
  ) {}

  table(): string {
    const width = Math.max(...this.rows.map((r) => r.name.length), 5) + 2;
    const line = (name: string, calls: string, ms: string, pct: string) =>
      name.padEnd(width) + calls.padStart(6) + ms.padStart(10) + pct.padStart(7);
    return [
      line("op", "calls", "ms", "%"),
      ...this.rows.map((r) =>
        line(r.name, String(r.calls), r.ms.toFixed(1), ((100 * r.ms) / this.totalMs).toFixed(1)),
      ),
      line("total", "", this.totalMs.toFixed(1), "100.0"),
    ].join("\n");
  }
}

/**
 * Runs fn with every op timed (wall clock). Rows are named like the op and its output shape
 * ("Linear [4, 256, 49152]"); backward rows like "Linear.backward [4, 256, 49152]".
 */
export function profile(fn: () => void): ProfileReport {
  if (stats) throw new Error("profile() calls cannot be nested");
  const collected = new Map<string, Entry>();
  stats = collected;
  childMs = 0;
  const start = performance.now();
  try {
    fn();
  } finally {
    stats = null;
  }
  const totalMs = performance.now() - start;
  const rows = [...collected].map(([name, e]) => ({ name, ...e }));
  const tracked = rows.reduce((s, r) => s + r.ms, 0);
  rows.push({ name: "(other)", calls: 1, ms: totalMs - tracked });
  rows.sort((a, b) => b.ms - a.ms);
  return new ProfileReport(rows, totalMs);
}
