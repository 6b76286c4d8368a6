// pnpm bench (after step 6's line): a long sequence (2048 positions) through a small Llama, with context
// parallelism (cp ranks of one thread each) against one process on one thread and on cp threads (the same
// cores as the cp ranks). Per rank: the memory one attention layer keeps from its forward to its backward
// (plain attention keeps its [heads, seq, seq] probabilities; ring attention only its output and one
// log-sum-exp per query), the peak RSS, and tokens/s of a training step (fwd + bwd + gradient average over
// the cp ranks + AdamW) with the CPU time the step took on the busiest rank.
//   pnpm --filter step9 bench [-- --seq 2048 --cp 2 --steps 3]
// Each configuration runs in a process of its own (its peak RSS is its own; MPI starts once per process):
// the launching process is the driver, which prints the table.
import { spawnSync } from "node:child_process";
import v8 from "node:v8";
import vm from "node:vm";
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { F, Generator, optim, setNumThreads, Tensor } from "@picotron/tensor";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { LlamaConfig } from "@picotron/transformers";
import { ring_attention } from "./context_parallel.ts";
import { DataParallelBucket } from "./data_parallel.ts";
import { Llama, lossFn } from "./model.ts";
import { type ProcessGroupManager, setup_process_group_manager } from "./process_group_manager.ts";

// small enough for 2048 positions on 2 cores: attention's [seq, seq] scores weigh as much as the weights
const SMALL: LlamaConfig = {
  vocab_size: 8192,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 2048,
};

interface Result {
  cp: number;
  threads_per_rank: number;
  seq: number;
  tokens_per_s: number;
  cpu_s_per_step_per_rank: number;
  attention_mib_per_layer_per_rank: number;
  peak_rss_mib_per_rank: number;
}

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .options({
    steps: { type: "number", default: 3, describe: "timed steps per run (plus one warm-up)" },
    cp: { type: "number", default: 2, describe: "context parallel size (ranks of one thread each)" },
    mbs: { type: "number", default: 1, describe: "sequences per step" },
    seq: { type: "number", default: 2048 },
    run: { type: "string", describe: "(set by the driver) one configuration: cp,threads" },
  })
  .strict()
  .parseSync();
if (args.seq % args.cp !== 0) throw new Error(`--seq ${args.seq} is not divisible by --cp ${args.cp}`);
const config = { ...SMALL, max_position_embeddings: args.seq };

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
/**
 * Frees everything unreachable. One collection does not always do it (objects with a native part, such as
 * MPI requests, are finalized after it): collect a few times, letting their finalizers run in between.
 */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Bytes one attention layer keeps from its forward until its backward: its output and the tensors saved for
 * the backward, measured as what dropping the output (and with it the graph) frees.
 */
async function attentionBytes(cp: number): Promise<number> {
  const headDim = config.hidden_size / config.num_attention_heads;
  const local = args.seq / cp;
  const input = (heads: number) =>
    new Tensor(new Float32Array(args.mbs * local * heads * headDim).fill(0.5), [
      args.mbs,
      local,
      heads,
      headDim,
    ]).requiresGrad_();
  const q = input(config.num_attention_heads);
  const [k, v] = [input(config.num_key_value_heads), input(config.num_key_value_heads)];
  // [mbs, seq/cp, heads, head_dim], with its graph
  const kept = [cp > 1 ? ring_attention(q, k, v) : F.causal_attention(q, k, v)];
  await collectGarbage();
  const held = process.memoryUsage().arrayBuffers;
  kept.pop();
  await collectGarbage();
  return held - process.memoryUsage().arrayBuffers;
}

/**
 * Seconds of the fastest training step on this rank's slice of a fixed random batch, after one warm-up step
 * (which builds the kernels): on a shared machine the others are slowed by whatever else runs. Also the CPU
 * seconds this process spent in that step, which other work on the machine barely changes.
 */
function stepSeconds(grid: ProcessGroupManager): { wall: number; cpu: number } {
  const [cp, cpRank] = [grid.cp_world_size, grid.cp_rank];
  const gen = new Generator(0, "bench-data");
  const ids = new Tensor(
    Int32Array.from({ length: args.mbs * (args.seq + 1) }, () => gen.randint(config.vocab_size)),
    [args.mbs, args.seq + 1],
  );
  const local = args.seq / cp;
  const input = ids.narrow(1, cpRank * local, local).contiguous(); // [mbs, seq/cp]
  const target = ids.narrow(1, cpRank * local + 1, local).contiguous();
  const model = new Llama(config).initWeights(0);
  const wrapped = cp > 1 ? new DataParallelBucket(model, grid.cp_dp_group) : model;
  const optimizer = new optim.AdamW(model.parameters(), { lr: 3e-4 });
  let best = { wall: Infinity, cpu: NaN };
  for (let s = 0; s <= args.steps; s++) {
    grid.world_group.barrier(); // every rank starts the step together
    const [t, cpu] = [performance.now(), process.cpuUsage()];
    optimizer.zeroGrad(false);
    lossFn(wrapped.forward(input), target).backward();
    if (wrapped instanceof DataParallelBucket) wrapped.finishGradientSynchronization();
    optimizer.step();
    const wall = (performance.now() - t) / 1e3;
    const { user, system } = process.cpuUsage(cpu);
    if (s > 0 && wall < best.wall) best = { wall, cpu: (user + system) / 1e6 };
  }
  return best;
}

if (args.run === undefined) {
  // the driver: cp = 1 on one thread and on cp threads, then cp ranks of one thread each (a rank of the
  // last one runs this script with the same --run under mpirun)
  const run = (cp: number, threads: number): Result => {
    const flags = [`--run=${cp},${threads}`, `--cp=${args.cp}`, `--steps=${args.steps}`, `--mbs=${args.mbs}`];
    const r = spawnSync(
      process.execPath,
      [...process.execArgv, process.argv[1]!, ...flags, `--seq=${args.seq}`],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    if (r.status !== 0) throw new Error(`cp=${cp} threads=${threads} failed (exit ${r.status})`);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Result;
  };
  console.table([run(1, 1), run(1, args.cp), run(args.cp, 1)]);
} else {
  const [cp, threads] = args.run.split(",").map(Number) as [number, number];
  await ensureLaunched({ worldSize: cp });
  setNumThreads(threads);
  // attention alone first: the training step's buffers would blur the measure
  const grid = setup_process_group_manager(1, 1, cp, 1);
  const held = new Float64Array([await attentionBytes(cp)]);
  const { wall, cpu } = stepSeconds(grid);
  const seconds = new Float64Array([wall, cpu]);
  const rss = new Float64Array([process.resourceUsage().maxRSS * 1024]);
  // per rank: the largest over the ranks (the rank with the most blocks to attend to is the slowest)
  for (const x of [held, seconds, rss]) grid.world_group.allreduce(x, "max");
  const mib = (bytes: number) => +(bytes / 2 ** 20).toFixed(3);
  const result: Result = {
    cp,
    threads_per_rank: threads,
    seq: args.seq,
    tokens_per_s: +((args.mbs * args.seq) / seconds[0]!).toFixed(1),
    cpu_s_per_step_per_rank: +seconds[1]!.toFixed(2),
    attention_mib_per_layer_per_rank: mib(held[0]!),
    peak_rss_mib_per_rank: Math.round(mib(rss[0]!)),
  };
  if (grid.global_rank === 0) console.log(JSON.stringify(result));
}
