// The tutorial's MicroBatchDataLoader: documents -> tokens (EOS between documents) -> one long stream cut into
// chunks of seq_len + 1 tokens that overlap by one (chunk k = tokens [k*seq_len, k*seq_len + seq_len + 1)), so
// each chunk gives input_ids = its first seq_len tokens and target_ids = its last seq_len.
// Data parallelism: the DistributedSampler (torch's, shuffle=False) gives dp rank r chunks r, r + dp, r + 2dp, ...
// so the dp ranks together read exactly the chunks of the 1-rank run's global batch at every step.
import {
  BUILTIN_CORPUS_SOURCE,
  loadDocuments,
  loadOrBuildTokens,
  numChunks,
  tokenizer_group_text,
} from "@picotron/datasets";
import { UsageError } from "@picotron/argparse";
import { Tensor } from "@picotron/tensor";
import { loadTokenizer, paddedVocabSize, type Tokenizer } from "@picotron/transformers";

export interface DataLoaderOptions {
  seq_len: number;
  micro_batch_size: number;
  grad_acc_steps: number;
  dataset_name: string;
  tokenizer_name: string | undefined;
  model_name: string;
  max_tokens: number;
  dp_size: number;
  dp_rank: number;
}

/** torch's DistributedSampler, shuffle=False: replica `rank` takes samples rank, rank + num_replicas, ... */
export class DistributedSampler {
  constructor(
    readonly num_replicas: number,
    readonly rank: number,
  ) {}
  /** The dataset index of this replica's i-th sample (counted from where the loader is). */
  index(i: number): number {
    return i * this.num_replicas + this.rank;
  }
}

/** One micro-batch: input_ids, target_ids, position_ids. */
export type Batch = ReturnType<MicroBatchDataLoader["next"]>;

export class MicroBatchDataLoader {
  readonly seq_len: number;
  readonly micro_batch_size: number;
  readonly grad_acc_steps: number;
  /** Chunks per optimizer step over all dp ranks: micro_batch_size x grad_acc_steps x dp. */
  readonly global_batch_size: number;
  /** The tokenizer's vocabulary padded to a multiple of 64: the same model in every parallel layout. */
  readonly vocab_size: number;
  readonly num_samples: number;
  readonly sampler: DistributedSampler;
  private next_sample = 0;

  private constructor(
    readonly tokenizer: Tokenizer,
    private readonly tokens: Int32Array,
    opts: DataLoaderOptions,
  ) {
    this.seq_len = opts.seq_len;
    this.micro_batch_size = opts.micro_batch_size;
    this.grad_acc_steps = opts.grad_acc_steps;
    this.sampler = new DistributedSampler(opts.dp_size, opts.dp_rank);
    this.global_batch_size = opts.micro_batch_size * opts.grad_acc_steps * opts.dp_size;
    this.vocab_size = paddedVocabSize(tokenizer.vocabSize);
    this.num_samples = numChunks(tokens.length, opts.seq_len);
    const needed =
      Math.ceil(opts.max_tokens / (this.global_batch_size * opts.seq_len)) * this.global_batch_size;
    const count = (chunks: number) =>
      `${chunks * (opts.seq_len + 1)} tokens (${chunks} chunks of seq_len + 1)`;
    if (needed > this.num_samples) {
      const need = `${count(needed)} for --max_tokens ${opts.max_tokens}`;
      throw new UsageError(
        `Not enough tokens. Have ${count(this.num_samples)} but need ${need}: use more data`,
      );
    }
  }

  /** Loads (or reads from the on-disk cache, as datasets' map(load_from_cache_file=True)) the tokens. */
  static async create(opts: DataLoaderOptions): Promise<MicroBatchDataLoader> {
    const tokenizer = await loadTokenizer(opts.tokenizer_name, opts.model_name);
    const tokens = await loadOrBuildTokens({
      key: { dataset: opts.dataset_name, tokenizer: tokenizer.name, seq_len: opts.seq_len },
      // edits to any of these rebuild the cache (a path that is not a file is left out of the key)
      sourceFiles: [
        opts.dataset_name.startsWith("builtin:") ? BUILTIN_CORPUS_SOURCE : opts.dataset_name,
        `${tokenizer.name}/tokenizer.json`,
      ],
      build: async (progress) =>
        tokenizer_group_text(await loadDocuments(opts.dataset_name), tokenizer, opts.seq_len, progress),
    });
    return new MicroBatchDataLoader(tokenizer, tokens, opts);
  }

  /** The next micro-batch: input_ids, target_ids, position_ids, each [micro_batch_size, seq_len] int32. */
  next(): { input_ids: Tensor; target_ids: Tensor; position_ids: Tensor } {
    const { seq_len: seq, micro_batch_size: mbs } = this;
    const inputs = new Int32Array(mbs * seq);
    const targets = new Int32Array(mbs * seq);
    const positions = new Int32Array(mbs * seq);
    for (let b = 0; b < mbs; b++) {
      const chunk = this.next_sample + this.sampler.index(b); // this rank's b-th chunk of the step's
      if (chunk >= this.num_samples)
        throw new RangeError(
          `the dataset's ${this.num_samples} chunks are used up (asked for chunk ${chunk})`,
        );
      const start = chunk * seq;
      inputs.set(this.tokens.subarray(start, start + seq), b * seq);
      targets.set(this.tokens.subarray(start + 1, start + seq + 1), b * seq);
      for (let p = 0; p < seq; p++) positions[b * seq + p] = p;
    }
    this.next_sample += mbs * this.sampler.num_replicas;
    const shape = [mbs, seq];
    return {
      input_ids: new Tensor(inputs, shape),
      target_ids: new Tensor(targets, shape),
      position_ids: new Tensor(positions, shape),
    };
  }

  /** Where a run is in the data (saved in checkpoints): chunks consumed by all dp ranks together. */
  state(): { next_sample: number; tokenizer: string } {
    return { next_sample: this.next_sample, tokenizer: this.tokenizer.name }; // the tokenizer: for generation
  }

  loadState(state: { next_sample: number }): void {
    const n = state.next_sample;
    if (!Number.isInteger(n) || n < 0 || n > this.num_samples)
      throw new RangeError(
        `dataloader state: next_sample ${n} is outside the dataset's ${this.num_samples} chunks`,
      );
    this.next_sample = n;
  }
}
