import { describe, expect, it } from "vitest";
import { DataLoader, DistributedSampler, type DataLoaderOptions } from "./data_loader.ts";

// the batch as its chunks, one array per chunk
class Rows extends DataLoader<number[][]> {
  protected override collate_batch(rows: Int32Array): number[][] {
    const n = this.seq_len + 1;
    return Array.from({ length: this.batch_size }, (_, b) => Array.from(rows.subarray(b * n, (b + 1) * n)));
  }
}

const tokens = Int32Array.from({ length: 4 * 60 + 1 }, (_, i) => i); // 60 chunks of seq_len 4
const read = (loader: Rows, batches: number) => Array.from({ length: batches }, () => loader.next());

describe("DataLoader", () => {
  it("gathers the chunks of seq_len + 1 tokens in order, overlapping by one", () => {
    const loader = new Rows(tokens, { seq_len: 4, batch_size: 2, num_workers: 0 });
    expect(loader.num_samples).toBe(60);
    expect(read(loader, 2)).toEqual([
      [
        [0, 1, 2, 3, 4],
        [4, 5, 6, 7, 8],
      ],
      [
        [8, 9, 10, 11, 12],
        [12, 13, 14, 15, 16],
      ],
    ]);
    expect(loader.next_sample).toBe(4);
  });

  it("gives with 1 and 3 worker threads, and with a sampler, exactly the batches of the training thread", () => {
    for (const sampler of [undefined, new DistributedSampler(3, 2)]) {
      const opts: DataLoaderOptions = { seq_len: 4, batch_size: 2, num_workers: 0, sampler };
      const batches = 60 / (2 * (sampler?.num_replicas ?? 1));
      const expected = read(new Rows(tokens, opts), batches);
      for (const num_workers of [1, 3]) {
        const loader = new Rows(tokens, { ...opts, num_workers });
        expect(read(loader, batches)).toEqual(expected);
        expect(() => loader.next()).toThrow("the dataset's 60 chunks are used up");
        loader.close();
      }
    }
  });

  it("the sampler gives replica r chunks r, r + R, ...; next_sample counts every replica's", () => {
    const loader = new Rows(tokens, {
      seq_len: 4,
      batch_size: 2,
      num_workers: 0,
      sampler: new DistributedSampler(3, 1),
    });
    expect(loader.next().map((row) => row[0])).toEqual([4, 16]); // chunks 1 and 4
    expect(loader.next_sample).toBe(6);
  });

  it("seek: a resumed run goes on from its chunk, also after workers gathered batches ahead", () => {
    const opts = { seq_len: 4, batch_size: 3, num_workers: 0 };
    const whole = read(new Rows(tokens, opts), 6);
    const loader = new Rows(tokens, { ...opts, num_workers: 2 });
    read(loader, 4); // the workers are ahead of batch 4 now
    loader.seek(9);
    expect(read(loader, 3)).toEqual(whole.slice(3));
    expect(loader.next_sample).toBe(18);
    loader.close();
  });
});
