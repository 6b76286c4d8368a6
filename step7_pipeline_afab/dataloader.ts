// The tutorial's MicroBatchDataLoader: documents -> tokens (EOS between documents) -> one long stream cut into
// chunks of seq_len + 1 tokens that overlap by one (chunk k = tokens [k*seq_len, k*seq_len + seq_len + 1)), so
// each chunk gives input_ids = its first seq_len tokens and target_ids = its last seq_len.
//
// Data parallelism (step 5): the DistributedSampler (torch's, with shuffle=False) gives dp rank r chunks r,
// r + dp, r + 2dp, ... so the dp ranks together read exactly the chunks of the 1-rank run's global batch at
// every step.
import path from "node:path";
import { BUILTIN_CORPUS_SOURCE, loadDocuments, loadOrBuildTokens } from "@picotron/datasets";
import { Tensor } from "@picotron/tensor";
import { loadTokenizer, paddedVocabSize, type Tokenizer } from "@picotron/transformers";

export interface DataLoaderOptions {
  seq_len: number;
  micro_batch_size: number;
  grad_acc_steps: number;
  dataset_name: string;
  /** undefined: the tokenizer of model_name when it is a local directory with tokenizer.json, else bytes. */
  tokenizer_name: string | undefined;
  model_name: string;
  /** Tokens the run trains on (global): the dataset must hold enough chunks for them. */
  max_tokens: number;
  dp_size: number;
  dp_rank: number;
  /** Relative dataset/tokenizer paths and the cache folder are resolved against it. */
  cwd: string;
}

export interface Batch {
  input_ids: Tensor; // [micro_batch_size, seq_len] int32
  target_ids: Tensor; // [micro_batch_size, seq_len] int32
  position_ids: Tensor; // [micro_batch_size, seq_len] int32
}

/** Where a run is in the data (saved in checkpoints): chunks consumed by all dp ranks together. */
export interface DataLoaderState {
  next_sample: number;
}

/**
 * torch's DistributedSampler with shuffle=False: replica `rank` of `num_replicas` takes samples rank,
 * rank + num_replicas, rank + 2 num_replicas, ... of the dataset, so the replicas together take each once.
 */
export class DistributedSampler {
  constructor(
    readonly num_replicas: number,
    readonly rank: number,
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= num_replicas) {
      throw new RangeError(`dp_rank ${rank} is outside dp_size ${num_replicas}`);
    }
  }

  /** The dataset index of this replica's i-th sample (counted from where the loader is). */
  index(i: number): number {
    return i * this.num_replicas + this.rank;
  }
}

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
  private nextSample = 0;

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
    const tokensPerStep = this.global_batch_size * opts.seq_len;
    const neededSamples = Math.ceil(opts.max_tokens / tokensPerStep) * this.global_batch_size;
    if (neededSamples > this.num_samples) {
      throw new Error(
        `Not enough tokens. Have ${this.num_samples * (opts.seq_len + 1)} tokens (${this.num_samples} chunks of ` +
          `seq_len + 1 = ${opts.seq_len + 1}) but need ${neededSamples * (opts.seq_len + 1)} tokens ` +
          `(${neededSamples} chunks) for --max_tokens ${opts.max_tokens}: lower --max_tokens or use a larger dataset`,
      );
    }
  }

  /** Loads (or reads from the on-disk cache) the tokenized dataset; checks it holds enough tokens. */
  static async create(opts: DataLoaderOptions): Promise<MicroBatchDataLoader> {
    const tokenizer = await loadTokenizer(opts.tokenizer_name, opts.model_name, opts.cwd);
    const tokens = await loadOrBuildTokens({
      cwd: opts.cwd,
      key: { dataset: opts.dataset_name, tokenizer: tokenizer.name, seq_len: opts.seq_len },
      // edits to any of these rebuild the cache (a path that is not a file is left out of the key)
      sourceFiles: [
        opts.dataset_name.startsWith("builtin:") ? BUILTIN_CORPUS_SOURCE : opts.dataset_name,
        path.join(tokenizer.name, "tokenizer.json"),
      ],
      build: async (progress) =>
        tokenize(await loadDocuments(opts.dataset_name, opts.cwd), tokenizer, opts.seq_len, progress),
    });
    return new MicroBatchDataLoader(tokenizer, tokens, opts);
  }

  /** The next micro-batch of this dp rank. */
  next(): Batch {
    const { seq_len: seq, micro_batch_size: mbs } = this;
    const inputs = new Int32Array(mbs * seq);
    const targets = new Int32Array(mbs * seq);
    const positions = new Int32Array(mbs * seq);
    for (let b = 0; b < mbs; b++) {
      const chunk = this.nextSample + this.sampler.index(b); // this rank's b-th chunk of the step's
      if (chunk >= this.num_samples) {
        throw new RangeError(
          `the dataset's ${this.num_samples} chunks are used up (asked for chunk ${chunk})`,
        );
      }
      const start = chunk * seq;
      inputs.set(this.tokens.subarray(start, start + seq), b * seq);
      targets.set(this.tokens.subarray(start + 1, start + seq + 1), b * seq);
      for (let p = 0; p < seq; p++) positions[b * seq + p] = p;
    }
    this.nextSample += mbs * this.sampler.num_replicas;
    return {
      input_ids: new Tensor(inputs, [mbs, seq]),
      target_ids: new Tensor(targets, [mbs, seq]),
      position_ids: new Tensor(positions, [mbs, seq]),
    };
  }

  state(): DataLoaderState {
    return { next_sample: this.nextSample };
  }

  loadState(state: DataLoaderState): void {
    const n = state.next_sample;
    if (!Number.isInteger(n) || n < 0 || n > this.num_samples) {
      throw new RangeError(
        `dataloader state: next_sample ${n} is outside the dataset's ${this.num_samples} chunks`,
      );
    }
    this.nextSample = n;
  }
}

/** Chunks of seq_len + 1 tokens, overlapping by one token, that fit in a stream of n tokens. */
export function numChunks(n: number, seqLen: number): number {
  return n < seqLen + 1 ? 0 : Math.floor((n - 1) / seqLen);
}

/**
 * Tokenizes every document, appends EOS after each (when the tokenizer has one) and concatenates them,
 * keeping only the tokens that whole chunks use. `progress(done, total)` is called as documents finish.
 */
export function tokenize(
  documents: readonly string[],
  tokenizer: Tokenizer,
  seqLen: number,
  progress: (done: number, total: number) => void = () => {},
): Int32Array {
  const parts: Int32Array[] = [];
  let length = 0;
  documents.forEach((doc, i) => {
    const ids = tokenizer.encode(doc);
    parts.push(ids);
    length += ids.length;
    if (tokenizer.eosId !== null) {
      parts.push(Int32Array.of(tokenizer.eosId));
      length += 1;
    }
    progress(i + 1, documents.length);
  });
  const chunks = numChunks(length, seqLen);
  const stream = new Int32Array(chunks === 0 ? length : chunks * seqLen + 1);
  let offset = 0;
  for (const p of parts) {
    if (offset >= stream.length) break;
    const take = Math.min(p.length, stream.length - offset);
    stream.set(p.subarray(0, take), offset);
    offset += take;
  }
  return stream;
}
