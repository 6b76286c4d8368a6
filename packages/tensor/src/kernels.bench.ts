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

// The residual stream's adds, as a training step sees them: [1024, 576] activations read from memory (many
// different ones, not one hot buffer) into a fresh output each time. Averaged over the pairs.
const h = 1024 * 576;
const pairs = Array.from({ length: 32 }, (_, k) =>
  [0, 1].map(() => Float32Array.from({ length: h }, (_, i) => Math.sin(i + k))),
);
const add = kernel((g) =>
  g.output(g.op("Add", [g.input("x", "float32", [h]), g.input("y", "float32", [h])]), "float32", [h]),
);
rows.push([
  `add, ${h} elements, fresh output`,
  best(() => {
    for (const [a, b] of pairs) {
      const o = new Float32Array(h);
      for (let i = 0; i < h; i++) o[i] = a![i]! + b![i]!;
    }
  }) / pairs.length,
  best(() => {
    for (const [a, b] of pairs) add.run([io(a!, [h]), io(b!, [h])], [io(new Float32Array(h), [h])]);
  }) / pairs.length,
]);

const swiglu = kernel((g) => {
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
const softmax = kernel((g) =>
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
const reduce = kernel((g) =>
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
