// pnpm bench (after step 1's line): fwd + bwd + AdamW throughput of the "bench" Llama with tensor
// parallelism, tp ranks of one thread each, against the same work in one process with 1 and with tp
// threads (the fair comparison on a machine of tp cores).
//   pnpm --filter step4 bench [-- --steps 4 --tp_size 2]
// The single-process runs happen first in the launching process; their figures reach the ranks through
// the environment, which mpirun passes on.
import { ensureLaunched, isUnderMpi } from "@picotron/mpi-napi/launcher";
import { Generator, optim, setNumThreads, Tensor } from "@picotron/tensor";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { LlamaConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";
import { apply_tensor_parallel, checkTensorParallel } from "./tensor_parallel.ts";

// step 1's "bench" config (SmolLM-135M's shapes with 4 layers), but its 9 heads of 64 and 3 KV heads, which
// tp 2 cannot split, become 12 heads of 48 and 4 KV heads: the same weights' shapes, the same FLOPs.
const BENCH: LlamaConfig = {
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 4,
  num_attention_heads: 12,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 256,
};
const BASELINES_ENV = "PICOTRON_TP_BENCH_BASELINES";

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .options({
    steps: { type: "number", default: 4, describe: "timed steps per run (plus one warm-up)" },
    tp_size: { type: "number", default: 2, describe: "tensor parallel size (ranks of one thread each)" },
    mbs: { type: "number", default: 4 },
    seq: { type: "number", default: 256 },
  })
  .strict()
  .parseSync();
const config = { ...BENCH, max_position_embeddings: args.seq };
checkTensorParallel(config, args.tp_size);
const tokensPerStep = args.mbs * args.seq;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median seconds of a training step (after one warm-up step, which compiles the kernels). */
function timeSteps(model: Llama): number {
  const gen = new Generator(0, "bench-data");
  const ids = new Tensor(
    Int32Array.from({ length: args.mbs * (args.seq + 1) }, () => gen.randint(config.vocab_size)),
    [args.mbs, args.seq + 1],
  );
  const input = ids.narrow(1, 0, args.seq).contiguous();
  const target = ids.narrow(1, 1, args.seq).contiguous();
  const optimizer = new optim.AdamW(model.parameters(), { lr: 3e-4 });
  const times: number[] = [];
  for (let s = 0; s <= args.steps; s++) {
    const t = performance.now();
    optimizer.zeroGrad();
    lossFn(model.forward(input), target).backward();
    optimizer.step();
    times.push((performance.now() - t) / 1e3);
  }
  return median(times.slice(1));
}

if (!isUnderMpi()) {
  // tp = 1 in this process, with 1 thread and with as many threads as the tp job has ranks
  const baselines: Record<string, number> = {};
  for (const threads of [1, args.tp_size]) {
    setNumThreads(threads);
    baselines[threads] = tokensPerStep / timeSteps(new Llama(config).initWeights(0));
  }
  baselines.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  process.env[BASELINES_ENV] = JSON.stringify(baselines);
} else if (process.env[BASELINES_ENV] === undefined) {
  throw new Error(
    "tp.bench.ts measures its baselines before starting mpirun: run `pnpm --filter step4 bench`",
  );
}
await ensureLaunched({ worldSize: args.tp_size });

setNumThreads(1);
const grid = setup_process_group_manager(1, 1, args.tp_size);
const model = apply_tensor_parallel(new Llama(config)).initWeights(0);
const tps = tokensPerStep / timeSteps(model);
const rss = new Float64Array([process.resourceUsage().maxRSS / 1024]);
grid.world_group.allreduce(rss, "max");

if (grid.global_rank === 0) {
  const baselines = JSON.parse(process.env[BASELINES_ENV]!) as Record<string, number>;
  const one = baselines[1]!;
  const many = baselines[args.tp_size]!;
  console.log(
    JSON.stringify({
      impl: "picotron-ts",
      config: "bench",
      tp: args.tp_size,
      threads_per_rank: 1,
      mbs: args.mbs,
      seq: args.seq,
      tokens_per_s: +tps.toFixed(1),
      tp1_1thread_tokens_per_s: +one.toFixed(1),
      [`tp1_${args.tp_size}threads_tokens_per_s`]: +many.toFixed(1),
      ratio_vs_tp1_1thread: +(tps / one).toFixed(3),
      [`ratio_vs_tp1_${args.tp_size}threads`]: +(tps / many).toFixed(3),
      peak_rss_mb_per_rank: Math.round(rss[0]!),
      tp1_peak_rss_mb: Math.round(baselines.peak_rss_mb!),
    }),
  );
}
