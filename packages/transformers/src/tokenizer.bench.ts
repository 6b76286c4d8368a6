// How fast the built-in bytes tokenizer encodes: a figure to watch, not a test (a busy machine would fail one).
// Run: pnpm --filter @picotron/transformers bench
import { loadTokenizer } from "./tokenizer.ts";

const tok = await loadTokenizer("bytes", "unused", process.cwd());
const text = "Once upon a time, there was a little fox. ".repeat(200_000); // 8.4 MB
// CPU time, best of 5: other processes sharing the cores inflate wall time
let best = Infinity;
for (let i = 0; i < 5; i++) {
  const start = process.cpuUsage();
  tok.encode(text);
  const used = process.cpuUsage(start);
  best = Math.min(best, (used.user + used.system) / 1e6);
}
console.log(
  `bytes tokenizer: ${(text.length / 1e6 / best).toFixed(0)} MB/s (${(text.length / 1e6).toFixed(1)} MB, best of 5, CPU time)`,
);
