// One tokenizer thread of encodeBatch: loads the tokenizer by name (TypeScript through tsx, as the steps run)
// and sends back its shard's tokens back to back with each document's length.
import { parentPort, workerData } from "node:worker_threads";
import { tsImport } from "tsx/esm/api";

const { loadTokenizer } = await tsImport("./tokenizer.ts", import.meta.url);
const { name, cwd, texts } = workerData;
const tokenizer = await loadTokenizer(name, name, cwd);
const docs = [];
let total = 0;
for (const text of texts) {
  const ids = tokenizer.encode(text);
  docs.push(ids);
  total += ids.length;
  if (docs.length % 1000 === 0) parentPort.postMessage({ done: docs.length });
}
const flat = new Int32Array(total);
const lengths = Int32Array.from(docs, (d) => d.length);
let offset = 0;
for (const d of docs) {
  flat.set(d, offset);
  offset += d.length;
}
parentPort.postMessage({ done: docs.length });
parentPort.postMessage({ flat, lengths }, [flat.buffer, lengths.buffer]);
