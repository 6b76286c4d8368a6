import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MicroBatchDataLoader, type DataLoaderOptions } from "./dataloader.ts";

let dir: string;
let initCwd: string | undefined;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dataloader-"));
  process.env.PICOTRON_CACHE_DIR = path.join(dir, "cache");
  initCwd = process.env.INIT_CWD;
  process.env.INIT_CWD = dir; // the user's folder: relative dataset names are resolved against it
  fs.writeFileSync(path.join(dir, "abc.txt"), "abcdefghijklmnopqrstuvwxyz");
});
afterAll(() => {
  delete process.env.PICOTRON_CACHE_DIR;
  if (initCwd === undefined) delete process.env.INIT_CWD;
  else process.env.INIT_CWD = initCwd;
  fs.rmSync(dir, { recursive: true, force: true });
});

const base = (over: Partial<DataLoaderOptions> = {}): DataLoaderOptions => ({
  seq_len: 4,
  micro_batch_size: 2,
  grad_acc_steps: 1,
  dataset_name: "abc.txt",
  tokenizer_name: "bytes",
  model_name: "HuggingFaceTB/SmolLM-135M",
  max_tokens: 8,
  num_workers: 0,
  num_proc: 1,
  dp_size: 1,
  dp_rank: 0,
  ...over,
});

const rows = (t: { values(): ArrayLike<number> }, width: number) => {
  const v = Array.from(t.values());
  return Array.from({ length: v.length / width }, (_, i) => v.slice(i * width, (i + 1) * width));
};
// the byte tokenizer: token = byte value, EOS (256) after the document
const bytes = (s: string) => Array.from(Buffer.from(s));

describe("MicroBatchDataLoader", () => {
  it("cuts the token stream into overlapping chunks of seq_len + 1, in order", async () => {
    const dl = await MicroBatchDataLoader.create(base());
    // 26 letters + EOS = 27 tokens -> (27 - 1) / 4 = 6 chunks
    expect(dl.num_samples).toBe(6);
    expect(dl.vocab_size % 64).toBe(0);
    expect(dl.vocab_size).toBeGreaterThanOrEqual(257);
    const b0 = dl.next();
    expect(b0.input_ids.shape).toEqual([2, 4]);
    expect(rows(b0.input_ids, 4)).toEqual([bytes("abcd"), bytes("efgh")]);
    expect(rows(b0.target_ids, 4)).toEqual([bytes("bcde"), bytes("fghi")]);
    expect(rows(b0.position_ids, 4)).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ]);
    const b1 = dl.next();
    expect(rows(b1.input_ids, 4)).toEqual([bytes("ijkl"), bytes("mnop")]);
    const b2 = dl.next();
    expect(rows(b2.input_ids, 4)).toEqual([bytes("qrst"), bytes("uvwx")]);
    expect(rows(b2.target_ids, 4)).toEqual([bytes("rstu"), bytes("vwxy")]);
    expect(() => dl.next()).toThrow(/used up/);
  });

  it("the dp ranks together read exactly the 1-rank run's global batch", async () => {
    const one = await MicroBatchDataLoader.create(base({ micro_batch_size: 4, max_tokens: 16 }));
    const parts = await Promise.all(
      [0, 1].map((r) =>
        MicroBatchDataLoader.create(base({ micro_batch_size: 2, dp_size: 2, dp_rank: r, max_tokens: 16 })),
      ),
    );
    expect(parts[0]!.global_batch_size).toBe(one.global_batch_size);
    const whole = rows(one.next().input_ids, 4);
    const split = parts.map((p) => rows(p.next().input_ids, 4));
    // rank r holds chunks r, r + 2 of the global batch
    expect(split[0]).toEqual([whole[0], whole[2]]);
    expect(split[1]).toEqual([whole[1], whole[3]]);
  });

  it("global batch = micro_batch_size x grad_acc_steps x dp", async () => {
    const dl = await MicroBatchDataLoader.create(
      base({ micro_batch_size: 1, grad_acc_steps: 3, dp_size: 2, dp_rank: 1, max_tokens: 24 }),
    );
    expect(dl.global_batch_size).toBe(6);
  });

  it("refuses a max_tokens the dataset cannot hold, with both numbers", async () => {
    await expect(MicroBatchDataLoader.create(base({ max_tokens: 1000 }))).rejects.toThrow(
      /Not enough tokens\. Have 30 tokens .* but need 1250 tokens .*--max_tokens 1000/,
    );
  });

  it("state() and loadState() resume at the same chunk", async () => {
    const a = await MicroBatchDataLoader.create(base());
    a.next();
    const b = await MicroBatchDataLoader.create(base());
    b.loadState(a.state());
    expect(rows(b.next().input_ids, 4)).toEqual(rows(a.next().input_ids, 4));
    expect(() => b.loadState({ next_sample: 99 })).toThrow(/outside/);
  });

  it("--num_proc 2 and --num_workers 2 give the batches of one thread (tokenized, then gathered ahead)", async () => {
    const stories = { dataset_name: "builtin:stories", seq_len: 16, max_tokens: 512 };
    const one = await MicroBatchDataLoader.create(base(stories));
    const cache = process.env.PICOTRON_CACHE_DIR;
    process.env.PICOTRON_CACHE_DIR = path.join(dir, "cache-num-proc"); // tokenized again, on 2 threads
    try {
      const two = await MicroBatchDataLoader.create(base({ ...stories, num_proc: 2, num_workers: 2 }));
      for (let i = 0; i < 16; i++) {
        const [a, b] = [one.next(), two.next()];
        expect(Array.from(b.input_ids.values())).toEqual(Array.from(a.input_ids.values()));
        expect(Array.from(b.target_ids.values())).toEqual(Array.from(a.target_ids.values()));
      }
      two.close();
    } finally {
      process.env.PICOTRON_CACHE_DIR = cache;
    }
  });

  it("caches the tokens on disk and rebuilds when the dataset changes", async () => {
    const cache = process.env.PICOTRON_CACHE_DIR!;
    const file = path.join(dir, "changing.txt");
    fs.writeFileSync(file, "0123456789");
    const first = await MicroBatchDataLoader.create(base({ dataset_name: "changing.txt" }));
    const cached = fs.readdirSync(cache).filter((f) => f.endsWith(".tokens")).length;
    await MicroBatchDataLoader.create(base({ dataset_name: "changing.txt" }));
    expect(fs.readdirSync(cache).filter((f) => f.endsWith(".tokens")).length).toBe(cached);
    fs.writeFileSync(file, "9876543210");
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const second = await MicroBatchDataLoader.create(base({ dataset_name: "changing.txt" }));
    expect(rows(second.next().input_ids, 4)[0]).toEqual(bytes("9876"));
    expect(rows(first.next().input_ids, 4)[0]).toEqual(bytes("0123"));
  });
});
