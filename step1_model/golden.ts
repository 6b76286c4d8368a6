// Parity with PyTorch: loads a golden fixture (../shared/golden/README.md describes the format),
// compares logits, loss and every gradient of one micro-batch, then replays the short AdamW run.
//   pnpm golden -- --fixture ../shared/golden/tiny
// Prints one JSON line and exits non-zero when a figure is over its tolerance.
import fs from "node:fs";
import path from "node:path";
import { exitWithUsageError, parse_args } from "@picotron/argparse";
import { loadSafetensors, optim, Tensor } from "@picotron/tensor";
import { fromHfConfig } from "@picotron/transformers";
import { Llama, lossFn } from "./model.ts";

const TOLERANCE = { logits_max_abs: 1e-4, loss_abs: 1e-5, grads_max_rel: 1e-3, curve_max_abs: 1e-3 };

interface Golden {
  config: Record<string, unknown>;
  seq_len: number;
  micro_batch_size: number;
  gradient_accumulation_steps: number;
  steps: number;
  optimizer: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
  data: { file: string };
  first_microbatch_loss: number;
  loss_curve: number[];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The fixture's batching rule: chunk k = tokens [k*seq, k*seq + seq + 1); micro-batch m = chunks m*mbs.. */
function microBatch(tokens: Uint8Array, seq: number, mbs: number, m: number): [Tensor, Tensor] {
  const nChunks = Math.floor((tokens.length - 1) / seq);
  const input = new Int32Array(mbs * seq);
  const target = new Int32Array(mbs * seq);
  for (let r = 0; r < mbs; r++) {
    const start = ((m * mbs + r) % nChunks) * seq;
    for (let j = 0; j < seq; j++) {
      input[r * seq + j] = tokens[start + j]!;
      target[r * seq + j] = tokens[start + j + 1]!;
    }
  }
  return [new Tensor(input, [mbs, seq]), new Tensor(target, [mbs, seq])];
}

export function runGolden(fixture: string, dataFile?: string): Record<string, number> {
  const meta: Golden = JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8"));
  const config = fromHfConfig(meta.config, path.join(fixture, "golden.json"));
  const weights = loadSafetensors(path.join(fixture, "weights.safetensors")).tensors;
  const batch = loadSafetensors(path.join(fixture, "batch.safetensors")).tensors;
  const grads = loadSafetensors(path.join(fixture, "grads.safetensors")).tensors;

  // 1. one micro-batch: logits, loss, gradients
  const model = new Llama(config);
  model.loadStateDict(weights);
  const logits = model.forward(batch.input_ids!);
  const loss = lossFn(logits, batch.target_ids!);
  loss.backward();
  let gradsMaxRel = 0;
  for (const [name, p] of model.namedParameters()) {
    const ref = grads[name];
    if (!ref) throw new Error(`fixture has no gradient for ${name}`);
    const refMax = Math.max(...Array.from(ref.values(), Math.abs));
    gradsMaxRel = Math.max(gradsMaxRel, maxAbsDiff(p.grad!.values(), ref.values()) / refMax);
  }

  // 2. the short AdamW run from the same initial weights
  const file =
    dataFile ??
    [path.join(fixture, meta.data.file), path.join(fixture, "..", "..", "data", meta.data.file)].find((f) =>
      fs.existsSync(f),
    );
  if (!file) throw new Error(`cannot find the fixture's data file ${meta.data.file}; pass --data`);
  const tokens = new Uint8Array(fs.readFileSync(file));
  const trained = new Llama(config);
  trained.loadStateDict(weights);
  const o = meta.optimizer;
  const optimizer = new optim.AdamW(trained.parameters(), {
    lr: o.lr,
    betas: o.betas,
    eps: o.eps,
    weightDecay: o.weight_decay,
  });
  const curve: number[] = [];
  let m = 0;
  for (let step = 0; step < meta.steps; step++) {
    optimizer.zeroGrad();
    let acc = 0;
    for (let a = 0; a < meta.gradient_accumulation_steps; a++) {
      const [input, target] = microBatch(tokens, meta.seq_len, meta.micro_batch_size, m++);
      const l = lossFn(trained.forward(input), target).div(meta.gradient_accumulation_steps);
      l.backward();
      acc += l.item();
    }
    optimizer.step();
    curve.push(acc);
  }

  return {
    logits_max_abs: maxAbsDiff(logits.values(), batch.logits!.values()),
    loss_abs: Math.abs(loss.item() - meta.first_microbatch_loss),
    grads_max_rel: gradsMaxRel,
    curve_max_abs: maxAbsDiff(curve, meta.loss_curve),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parse_args("Parity with PyTorch on a golden fixture", {
    fixture: { type: "path", help: "fixture directory (golden.json + safetensors)" },
    data: { type: "path", help: "the text file the fixture was made from (default: found beside it)" },
  });
  if (args.fixture === undefined) exitWithUsageError("--fixture is required (a golden fixture directory)");
  const fixture = args.fixture;
  if (!fs.existsSync(path.join(fixture, "golden.json")))
    exitWithUsageError(`${fixture}: not a golden fixture (no golden.json)`);
  const result = runGolden(fixture, args.data);
  console.log(JSON.stringify(result));
  const over = Object.entries(result).filter(([k, v]) => !(v <= TOLERANCE[k as keyof typeof TOLERANCE]));
  if (over.length) {
    console.error(
      `over tolerance: ${over.map(([k, v]) => `${k}=${v} > ${TOLERANCE[k as keyof typeof TOLERANCE]}`).join(", ")}`,
    );
    process.exit(1);
  }
}
