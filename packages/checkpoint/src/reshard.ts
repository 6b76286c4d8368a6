// Resuming under another parallel layout (as torchtitan's distributed checkpoint does): the checkpoint's
// (tp, pp) shards are joined into whole tensors (export.ts), then every rank fills its own shard from them.
// A parameter knows where its elements sit in the whole tensor (Parameter.masterIndex, set where
// tensor_parallel.ts cuts it), so filling needs no knowledge of the split dims; a pipeline stage takes only
// the names it holds. dp and cp replicas hold whole copies of their (tp, pp) shard: they need nothing else.
import { type nn, type optim, Tensor } from "@picotron/tensor";
import { CheckpointError } from "./index.ts";
import { joinModelShards, loadWholeOptimizer } from "./export.ts";

/** The fingerprint's leaves as dotted paths ("model.num_hidden_layers" -> 2), arrays kept whole. */
function leaves(x: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (x !== null && typeof x === "object" && !Array.isArray(x)) {
    for (const [k, v] of Object.entries(x)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, JSON.stringify(x));
  return out;
}

/** What differs between this run's fingerprint and a checkpoint's, one "field here, there" per field. */
export function fingerprintDiff(
  here: Record<string, unknown>,
  checkpoint: Record<string, unknown>,
): { field: string; here: string; checkpoint: string }[] {
  const a = leaves(here);
  const b = leaves(checkpoint);
  const fields = [...new Set([...a.keys(), ...b.keys()])];
  return fields
    .filter((f) => a.get(f) !== b.get(f))
    .map((field) => ({ field, here: a.get(field) ?? "absent", checkpoint: b.get(field) ?? "absent" }));
}

/** A fingerprint's layout for people: [2, 1, 2] -> "dp 2 x pp 1 x tp 2" (step 9 adds cp: [dp, pp, cp, tp]). */
export function describeLayout(layout: unknown): string {
  if (!Array.isArray(layout)) return String(layout);
  const axes = layout.length === 4 ? ["dp", "pp", "cp", "tp"] : ["dp", "pp", "tp"];
  return layout.map((n, i) => `${axes[i] ?? "?"} ${n}`).join(" x ");
}

/** This rank's elements of a whole tensor: local[j] = whole[masterIndex(j)]. */
function localShard(name: string, p: nn.Parameter, whole: Tensor | undefined, what: string): Float32Array {
  if (!whole) throw new CheckpointError(`${what}: no shard holds ${name}`);
  const src = whole.values() as Float32Array;
  const out = new Float32Array(p.numel);
  for (let j = 0; j < out.length; j++) {
    const i = p.masterIndex(j);
    if (!(i < src.length))
      throw new CheckpointError(`${what}: ${name} has ${src.length} elements, this shard reads element ${i}`);
    out[j] = src[i]!;
  }
  return out;
}

/**
 * Fills this rank's parameters and their AdamW moments from whole tensors (the whole model's names; the
 * moments named `{parameter}.exp_avg` / `.exp_avg_sq`). The optimizer must be over model.parameters().
 */
export function fillFromWhole(
  model: nn.Module,
  optimizer: optim.AdamW,
  weights: Record<string, Tensor>,
  moments: Record<string, Tensor>,
  step: number,
  what: string,
): void {
  const named = model.namedParameters();
  if (optimizer.params.length !== named.length || optimizer.params.some((p, i) => p !== named[i]![1]))
    throw new CheckpointError(`${what}: the optimizer is not over the model's parameters: cannot re-shard`);
  // everything is checked and read before the first write: a failure leaves the model as it was
  const values = named.map(([name, p]) => localShard(name, p, weights[name], what));
  const tensors: Record<string, Tensor> = {};
  named.forEach(([name, p], i) => {
    for (const key of ["exp_avg", "exp_avg_sq"])
      tensors[`state.${i}.${key}`] = new Tensor(
        localShard(`${name}.${key}`, p, moments[`${name}.${key}`], what),
        p.shape,
      );
  });
  named.forEach(([, p], i) => (p.storage as Float32Array).set(values[i]!));
  optimizer.loadStateDict({ step, tensors });
}

/** Loads a checkpoint of another layout of the same model into this rank's shard of model and optimizer. */
export function loadResharded(dir: string, model: nn.Module, optimizer: optim.AdamW): void {
  // the fingerprints agree on the model config: the shapes are this run's (localShard checks the bounds)
  const { step, moments } = loadWholeOptimizer(dir);
  fillFromWhole(model, optimizer, joinModelShards(dir), moments, step, dir);
}
