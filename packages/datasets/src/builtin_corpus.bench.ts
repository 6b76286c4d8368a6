// How long the built-in corpus takes to make (it is made at every start of a default run): a figure to watch,
// not a test (a busy machine would fail one). Run: pnpm --filter @picotron/datasets bench
import { builtinStories } from "./builtin_corpus.ts";

let best = Infinity;
let bytes = 0;
for (let i = 0; i < 5; i++) {
  const start = process.cpuUsage();
  const stories = builtinStories();
  const used = process.cpuUsage(start);
  best = Math.min(best, (used.user + used.system) / 1e6);
  bytes = stories.reduce((n, s) => n + Buffer.byteLength(s), 0);
}
console.log(
  `builtinStories(): ${(bytes / 1e6).toFixed(2)} MB in ${(best * 1e3).toFixed(0)} ms (best of 5, CPU time)`,
);
