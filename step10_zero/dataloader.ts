// The tutorial's MicroBatchDataLoader: documents -> tokens (EOS between documents) -> one long stream cut into
// chunks of seq_len + 1 tokens that overlap by one (chunk k = tokens [k*seq_len, k*seq_len + seq_len + 1)), so
// each chunk gives input_ids = its first seq_len tokens and target_ids = its last seq_len.
// Data parallelism: the DistributedSampler (torch's, shuffle=False) gives dp rank r chunks r, r + dp, r + 2dp, ...
// so the dp ranks together read exactly the chunks of the 1-rank run's global batch at every step.
// Context parallelism: cp rank r keeps positions [r * seq_len/cp, (r + 1) * seq_len/cp) of every chunk (its
// inputs, targets and positions); the cp ranks of one dp rank together hold that dp rank's whole chunks.
import {
  BUILTIN_CORPUS_SOURCE,
  DataLoader,
  DistributedSampler,
  loadDocuments,
  loadOrBuildTokens,
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
  num_workers: number;
  num_proc: number;
  dp_size: number;
  dp_rank: number;
  cp_size: number;
  cp_rank: number;
}

/** One micro-batch: input_ids, target_ids, position_ids, each [micro_batch_size, seq_len] int32. */
export type Batch = { input_ids: Tensor; target_ids: Tensor; position_ids: Tensor };

export class MicroBatchDataLoader extends DataLoader<Batch> {
  readonly micro_batch_size: number;
  readonly grad_acc_steps: number;
  /** Chunks per optimizer step over all dp ranks: micro_batch_size x grad_acc_steps x dp. */
  readonly global_batch_size: number;
  /** The tokenizer's vocabulary padded to a multiple of 64: the same model in every parallel layout. */
  readonly vocab_size: number;
  /** Positions per cp rank: seq_len / cp_size. */
  readonly seq_len_per_rank: number;

  private constructor(
    readonly tokenizer: Tokenizer,
    tokens: Int32Array,
    private readonly opts: DataLoaderOptions,
  ) {
    const { seq_len, micro_batch_size, num_workers } = opts;
    const sampler = new DistributedSampler(opts.dp_size, opts.dp_rank);
    super(tokens, { seq_len, batch_size: micro_batch_size, num_workers, sampler });
    this.micro_batch_size = opts.micro_batch_size;
    this.grad_acc_steps = opts.grad_acc_steps;
    this.global_batch_size = opts.micro_batch_size * opts.grad_acc_steps * opts.dp_size;
    this.vocab_size = paddedVocabSize(tokenizer.vocabSize);
    this.seq_len_per_rank = opts.seq_len / opts.cp_size;
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
    if (opts.cp_rank < 0 || opts.cp_rank >= opts.cp_size)
      throw new RangeError(`cp_rank ${opts.cp_rank} is outside cp_size ${opts.cp_size}`);
    if (opts.seq_len % opts.cp_size !== 0)
      throw new RangeError(`seq_len ${opts.seq_len} is not divisible by cp_size ${opts.cp_size}`);
    const tokenizer = await loadTokenizer(opts.tokenizer_name, opts.model_name);
    const tokens = await loadOrBuildTokens({
      key: { dataset: opts.dataset_name, tokenizer: tokenizer.name, seq_len: opts.seq_len },
      // edits to any of these rebuild the cache (a path that is not a file is left out of the key)
      sourceFiles: [
        opts.dataset_name.startsWith("builtin:") ? BUILTIN_CORPUS_SOURCE : opts.dataset_name,
        `${tokenizer.name}/tokenizer.json`,
      ],
      build: async (progress) => {
        const documents = await loadDocuments(opts.dataset_name);
        return tokenizer_group_text(documents, tokenizer, opts.seq_len, opts.num_proc, progress);
      },
    });
    return new MicroBatchDataLoader(tokenizer, tokens, opts);
  }

  /** rows: [micro_batch_size, seq_len + 1] chunks -> this cp rank's part, each [micro_batch_size, seq_len/cp]. */
  protected override collate_batch(rows: Int32Array): Batch {
    const { seq_len: seq, seq_len_per_rank: local, micro_batch_size: mbs } = this;
    const first = this.opts.cp_rank * local; // this cp rank's first position
    const inputs = new Int32Array(mbs * local);
    const targets = new Int32Array(mbs * local);
    const positions = new Int32Array(mbs * local);
    for (let b = 0; b < mbs; b++) {
      const row = rows.subarray(b * (seq + 1) + first, b * (seq + 1) + first + local + 1);
      inputs.set(row.subarray(0, local), b * local);
      targets.set(row.subarray(1), b * local);
      for (let p = 0; p < local; p++) positions[b * local + p] = first + p;
    }
    const shape = [mbs, local];
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
    this.seek(state.next_sample); // gathering goes on from there
  }
}
