// pnpm bench (after step 1's and step 4's lines): throughput of a training step (fwd + bwd + gradient sync +
// clipping + AdamW) of the "bench" Llama with data parallelism: dp ranks of one thread each, each on the
// bench's micro-batch, naive (step 5) and bucketed (step 6), against the same global batch (dp micro-batches)
// in one process on one thread. Also how much of the bucketed all-reduces the backward pass hid: the time left to
// wait for them after it, how many buckets had completed before it ended, and each bucket's timeline; and
// the same dp ranks without any gradient synchronization: how far the cores themselves scale.
//   pnpm --filter step6 bench [-- --steps 4 --dp 2 --bucket_cap_mb 25 --hostfile hosts.txt]
// The single-process run happens first in the launching process; its figure reaches the ranks through the
// environment, which mpirun passes on. With --hostfile, the dp ranks run twice, on this machine and across
// the hostfile's machines, and a last line compares the two (docs/mpi.md: on the test hosts of
// scripts/hosts.sh, that is the cost of TCP between machines against shared memory, on the same cores).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ensureLaunched, isUnderMpi } from "@picotron/mpi-napi/launcher";
import { Generator, optim, setNumThreads, Tensor } from "@picotron/tensor";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { LlamaConfig } from "@picotron/transformers";
import { DataParallelBucket, DataParallelNaive } from "./data_parallel.ts";
import { Llama, lossFn } from "./model.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";

// step 1's "bench" config: SmolLM-135M's shapes with 4 layers (71M parameters, 284 MB of gradients)
const BENCH: LlamaConfig = {
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 4,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 256,
};
const BASELINE_ENV = "PICOTRON_DP_BENCH_BASELINE";
// "one" or "hosts": which of the two runs of --hostfile this process launches
const PLACEMENT_ENV = "PICOTRON_DP_BENCH_PLACEMENT";

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .options({
    steps: { type: "number", default: 4, describe: "timed steps per run (plus one warm-up)" },
    dp: { type: "number", default: 2, describe: "data parallel size (ranks of one thread each)" },
    mbs: { type: "number", default: 4, describe: "sequences per rank; the global batch is dp x mbs" },
    seq: { type: "number", default: 256 },
    bucket_cap_mb: { type: "number", default: 25 },
    hostfile: { type: "string", describe: "also run the dp ranks across these machines, and compare" },
  })
  .strict()
  .parseSync();
const config = { ...BENCH, max_position_embeddings: args.seq };
const globalBatch = args.dp * args.mbs;
const tokensPerStep = globalBatch * args.seq;

/** Sequences [first, first + count) of a fixed random global batch. */
function batch(first: number, count: number): { input: Tensor; target: Tensor } {
  const gen = new Generator(0, "bench-data");
  const ids = new Tensor(
    Int32Array.from({ length: globalBatch * (args.seq + 1) }, () => gen.randint(config.vocab_size)),
    [globalBatch, args.seq + 1],
  ).narrow(0, first, count);
  return {
    input: ids.narrow(1, 0, args.seq).contiguous(),
    target: ids.narrow(1, 1, args.seq).contiguous(),
  };
}

/**
 * One step's figures. The fastest step is reported: on a shared machine the others are slowed by whatever
 * else runs.
 */
interface Timing {
  /** Seconds per step. */
  step: number;
  /** In that step: seconds spent waiting for the buckets after the backward pass. */
  wait: number;
  /** In that step: buckets whose all-reduce had completed before the backward pass ended, of how many. */
  doneInBackward: number;
  buckets: number;
  /** In that step: seconds of the backward pass. */
  backward: number;
  /** In that step: each bucket's launch and completion, in ms from the end of the backward pass. */
  timeline: [number, number][];
}

/** One timed training step of `model` on sequences [first, first + count) of the global batch. */
function stepper(
  model: Llama,
  dp: DataParallelNaive<Llama> | DataParallelBucket<Llama> | null,
  sync: () => void,
  first: number,
  count: number,
): () => Timing {
  const { input, target } = batch(first, count);
  const optimizer = new optim.AdamW(model.parameters(), { lr: 3e-4 });
  return () => {
    sync(); // every rank starts the step together
    const t = performance.now();
    optimizer.zeroGrad(false);
    const loss = lossFn((dp ?? model).forward(input), target);
    const backwardStart = performance.now();
    loss.backward();
    const backwardEnd = performance.now();
    if (dp instanceof DataParallelBucket) dp.finishGradientSynchronization();
    const wait = (performance.now() - backwardEnd) / 1e3;
    optim.clipGradNorm(model.parameters(), 1);
    optimizer.step();
    const step = (performance.now() - t) / 1e3;
    const buckets = dp instanceof DataParallelBucket ? dp.bucket_manager.buckets : [];
    const doneInBackward = buckets.filter((b) => b.trace.completedAt < backwardEnd).length;
    const timeline = buckets.map(({ trace }): [number, number] => [
      +(trace.launchedAt - backwardEnd).toFixed(1),
      +(trace.completedAt - backwardEnd).toFixed(1),
    ]);
    const backward = (backwardEnd - backwardStart) / 1e3;
    return { step, wait, doneInBackward, buckets: buckets.length, backward, timeline };
  };
}

/**
 * The fastest step of each stepper, after one warm-up step (which compiles the kernels). The steppers take turns, step by step, so that
 * a shared machine's load falls on all of them alike. `slowest` turns a rank's step time into the job's.
 */
function fastest(steppers: (() => Timing)[], slowest: (seconds: number) => number): Timing[] {
  const best: (Timing | null)[] = steppers.map(() => null);
  for (let s = 0; s <= args.steps; s++) {
    steppers.forEach((step, i) => {
      const timing = step();
      timing.step = slowest(timing.step);
      if (s > 0 && (best[i] === null || timing.step < best[i]!.step)) best[i] = timing;
    });
  }
  return best.map((b) => b!);
}

setNumThreads(1);
if (!isUnderMpi() && process.env[BASELINE_ENV] === undefined) {
  // dp = 1 in this process, on one thread, with the whole global batch
  const model = new Llama(config).initWeights(0);
  const [one] = fastest([stepper(model, null, () => {}, 0, globalBatch)], (s) => s);
  process.env[BASELINE_ENV] = String(tokensPerStep / one!.step);
} else if (process.env[BASELINE_ENV] === undefined) {
  throw new Error(`dp.bench.ts measures its single-process baseline before it starts mpirun: run it as
  pnpm --filter step6 bench, not under mpirun by hand`);
}
if (!isUnderMpi() && args.hostfile !== undefined && process.env[PLACEMENT_ENV] === undefined) {
  // Both runs, one after the other, each its own job started by this same script.
  const lines = ["one", "hosts"].map((placement) => {
    const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      env: { ...process.env, [PLACEMENT_ENV]: placement },
      stdio: ["inherit", "pipe", "inherit"],
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`the dp run (${placement}) failed:\n${run.stdout}`);
    const line = run.stdout.trim().split("\n").pop()!;
    console.log(line);
    return JSON.parse(line) as Record<string, number>;
  });
  const [one, hosts] = lines as [Record<string, number>, Record<string, number>];
  const ratio = (key: string) => +(hosts[key]! / one[key]!).toFixed(3);
  console.log(
    JSON.stringify({
      dp: args.dp,
      across_hosts_vs_one_host: { naive: ratio("naive_tokens_per_s"), bucket: ratio("bucket_tokens_per_s") },
    }),
  );
  process.exit(0);
}
const acrossHosts = process.env[PLACEMENT_ENV] === "hosts";
await ensureLaunched({
  worldSize: args.dp,
  hostfile: acrossHosts ? path.resolve(process.env.INIT_CWD ?? process.cwd(), args.hostfile!) : undefined,
});

const grid = setup_process_group_manager(args.dp, 1, 1);
const sync = () => grid.dp_group.barrier();
const replica = (wrap: (m: Llama) => DataParallelNaive<Llama> | DataParallelBucket<Llama> | null) => {
  const model = new Llama(config).initWeights(0);
  return stepper(model, wrap(model), sync, grid.dp_rank * args.mbs, args.mbs);
};
// a step takes as long as its slowest rank
const slowest = (seconds: number) => {
  const buf = new Float64Array([seconds]);
  grid.dp_group.allreduce(buf, "max");
  return buf[0]!;
};
// "unsynced": the same ranks and steps with no gradient synchronization at all (wrong training, but the
// ceiling that the communication can at best be hidden up to: the cores' own scaling)
const [naive, bucket, unsynced] = fastest(
  [
    replica((m) => new DataParallelNaive(m, grid.dp_group)),
    replica((m) => new DataParallelBucket(m, grid.dp_group, args.bucket_cap_mb)),
    replica(() => null),
  ],
  slowest,
) as [Timing, Timing, Timing];

if (grid.global_rank === 0) {
  const one = Number(process.env[BASELINE_ENV]);
  const naiveTps = tokensPerStep / naive.step;
  const bucketTps = tokensPerStep / bucket.step;
  const unsyncedTps = tokensPerStep / unsynced.step;
  console.log(
    JSON.stringify({
      impl: "picotron-ts",
      config: "bench",
      dp: args.dp,
      placement: acrossHosts ? "across hosts" : "one host",
      threads_per_rank: 1,
      mbs_per_rank: args.mbs,
      seq: args.seq,
      dp1_1thread_tokens_per_s: +one.toFixed(1),
      naive_tokens_per_s: +naiveTps.toFixed(1),
      bucket_tokens_per_s: +bucketTps.toFixed(1),
      naive_speedup: +(naiveTps / one).toFixed(3),
      bucket_speedup: +(bucketTps / one).toFixed(3),
      naive_efficiency: +(naiveTps / one / args.dp).toFixed(3),
      bucket_efficiency: +(bucketTps / one / args.dp).toFixed(3),
      bucket_vs_naive: +(bucketTps / naiveTps).toFixed(3),
      unsynced_tokens_per_s: +unsyncedTps.toFixed(1),
      unsynced_speedup: +(unsyncedTps / one).toFixed(3),
      bucket_vs_unsynced: +(bucketTps / unsyncedTps).toFixed(3),
      bucket_cap_mb: args.bucket_cap_mb,
      buckets: bucket.buckets,
      buckets_done_in_backward: bucket.doneInBackward,
      bucket_wait_after_backward_s: +bucket.wait.toFixed(4),
      bucket_backward_s: +bucket.backward.toFixed(3),
      // rank 0's buckets in launch order: [launched, completed] in ms from the end of the backward pass
      bucket_timeline_ms: bucket.timeline,
    }),
  );
}
