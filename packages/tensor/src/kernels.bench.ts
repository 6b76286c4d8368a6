// Which elementwise work belongs in ORT and which in plain TS loops: each case timed both ways on one
// thread (best of 5). The ops in src/ops use the faster side of each pair.
//   pnpm --filter @picotron/tensor bench
import { kernel, setNumThreads } from "./kernels/ort.ts";

setNumThreads(1);

function best(f: () => void): number {
  f();
  let t = Infinity;
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    f();
    t = Math.min(t, performance.now() - s);
  }
  return t;
}

const n = 1024 * 1536; // one MLP activation of the bench config
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
const out = new Float32Array(n);
const io = (d: Float32Array, shape = [n]) => ({ data: d, shape });

const rows: [string, number, number][] = [];

const add = kernel(`bench-add|${n}`, (g) =>
  g.output(g.op("Add", [g.input("x", "float32", [n]), g.input("y", "float32", [n])]), "float32", [n]),
);
rows.push([
  `add, ${n} elements`,
  best(() => {
    for (let i = 0; i < n; i++) out[i] = x[i]! + y[i]!;
  }),
  best(() => add.run([io(x), io(y)], [io(out)])),
]);

const swiglu = kernel(`bench-swiglu|${n}`, (g) => {
  const a = g.input("x", "float32", [n]);
  g.output(g.op("Mul", [g.op("Mul", [a, g.op("Sigmoid", [a])]), g.input("y", "float32", [n])]), "float32", [
    n,
  ]);
});
rows.push([
  `silu(x) * y, ${n} elements`,
  best(() => {
    for (let i = 0; i < n; i++) out[i] = (x[i]! / (1 + Math.exp(-x[i]!))) * y[i]!;
  }),
  best(() => swiglu.run([io(x), io(y)], [io(out)])),
]);

const [r, c] = [256, 49152 / 8]; // softmax rows of a vocabulary-sized projection (a slice, to keep it short)
const logits = Float32Array.from({ length: r * c }, (_, i) => Math.sin(i));
const probs = new Float32Array(r * c);
const softmax = kernel(`bench-softmax|${r}|${c}`, (g) =>
  g.output(g.op("Softmax", [g.input("x", "float32", [r, c])], { axis: -1 }), "float32", [r, c]),
);
rows.push([
  `softmax, ${r} rows of ${c}`,
  best(() => {
    for (let i = 0; i < r; i++) {
      const o = i * c;
      let m = -Infinity;
      for (let j = 0; j < c; j++) m = Math.max(m, logits[o + j]!);
      let s = 0;
      for (let j = 0; j < c; j++) s += probs[o + j] = Math.exp(logits[o + j]! - m);
      for (let j = 0; j < c; j++) probs[o + j]! /= s;
    }
  }),
  best(() => softmax.run([io(logits, [r, c])], [io(probs, [r, c])])),
]);

const rowSum = new Float32Array(r);
const reduce = kernel(`bench-rowsum|${r}|${c}`, (g) =>
  g.output(
    g.op("ReduceSum", [g.input("x", "float32", [r, c]), g.constInt64([-1])], { keepdims: 0 }),
    "float32",
    [r],
  ),
);
rows.push([
  `row sums, ${r} rows of ${c}`,
  best(() => {
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += logits[i * c + j]!;
      rowSum[i] = s;
    }
  }),
  best(() => reduce.run([io(logits, [r, c])], [io(rowSum, [r])])),
]);

console.log("case".padEnd(36), "TS ms".padStart(8), "ORT ms".padStart(8), " faster");
for (const [name, ts, ort] of rows) {
  console.log(
    name.padEnd(36),
    ts.toFixed(2).padStart(8),
    ort.toFixed(2).padStart(8),
    ts < ort ? " TS" : " ORT",
  );
}
