// Deterministic, counter-based random numbers: value i of the stream named (seed, key) is a pure
// function of (seed, key, i). So any shard of a weight (a block of rows or columns, on any rank) can be
// generated directly and equals that slice of the full weight: tensor and pipeline parallelism build
// exactly the same master weights as the single-process model.

/** 32-bit finalizer of MurmurHash3: a strong bit mixer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a of a string, mixed with the seed. */
export function streamKey(seed: number, key: string): number {
  let h = 0x811c9dc5 ^ fmix32(seed >>> 0);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Uniform in [0, 1) (24 bits, exact in float32) for counter i of a stream. */
function uniform(stream: number, i: number): number {
  // two rounds over (stream, counter) so neighbouring counters are decorrelated
  const lo = i >>> 0;
  const hi = Math.floor(i / 4294967296) >>> 0;
  const h = fmix32(fmix32(lo ^ stream) ^ Math.imul(hi + 0x9e3779b9, 0x27d4eb2f) ^ 0x165667b1);
  return (h >>> 8) / 16777216;
}

/** Standard normal for counter i (Box-Muller on counters 2i and 2i+1). */
function normal(stream: number, i: number): number {
  const u1 = uniform(stream, 2 * i) + 1 / 33554432; // in (0, 1]
  const u2 = uniform(stream, 2 * i + 1);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

export type Distribution =
  { kind: "uniform"; low: number; high: number } | { kind: "normal"; mean: number; std: number };

/**
 * Fills `out` with elements of the stream: out[j] = sample(index(j)). `index` maps an output position to
 * the element's position in the full (unsharded) tensor; identity by default.
 */
export function fillRandom(
  out: Float32Array,
  seed: number,
  key: string,
  dist: Distribution,
  index: (j: number) => number = (j) => j,
): void {
  const stream = streamKey(seed, key);
  if (dist.kind === "uniform") {
    const w = dist.high - dist.low;
    for (let j = 0; j < out.length; j++) out[j] = dist.low + w * uniform(stream, index(j));
  } else {
    for (let j = 0; j < out.length; j++) out[j] = dist.mean + dist.std * normal(stream, index(j));
  }
}

/** A seeded sequential generator over the same kind of stream, for shuffling and random token batches. */
export class Generator {
  private counter = 0;
  private readonly stream: number;
  constructor(
    readonly seed: number,
    key = "generator",
  ) {
    this.stream = streamKey(seed, key);
  }
  /** Uniform in [0, 1). */
  random(): number {
    return uniform(this.stream, this.counter++);
  }
  /** Integer in [0, n). */
  randint(n: number): number {
    return Math.floor(this.random() * n);
  }
  /** Position in the stream, for checkpoints. */
  get state(): number {
    return this.counter;
  }
  set state(c: number) {
    this.counter = c;
  }
}
