// Test worker for context_parallel.test.ts, run as `node --import tsx context_parallel.worker.ts CP TP` (the
// launcher starts mpirun with CP x TP ranks). Every rank of a cp group builds the same whole-sequence q, k, v
// and output gradient (each tp index its own, so that two rings that mixed up their peers would fail),
// computes plain causal attention and its gradients on the whole sequence, then ring attention on its own
// slice, and prints one JSON line per case: the largest differences between its slice of the reference and
// its ring results (output, dQ, dK, dV), the reference's magnitudes, and the error that mismatched inputs
// raise.
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import { F, fillRandom, Tensor } from "@picotron/tensor";
import { ring_attention } from "./context_parallel.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";

const [cp, tp] = process.argv.slice(2).map(Number) as [number, number];
await ensureLaunched({ worldSize: cp * tp });
const grid = setup_process_group_manager(1, 1, cp, tp);
const rank = grid.cp_rank;

const CASES = {
  gqa: { heads: 4, kvHeads: 2, qScale: 1 }, // 2 query heads per KV head
  mha: { heads: 2, kvHeads: 2, qScale: 1 },
  // scores in the hundreds: the lse merge must not overflow
  large_scores: { heads: 4, kvHeads: 1, qScale: 30 },
};
const [B, S_LOCAL, D] = [2, 3, 8];
const S = cp * S_LOCAL;

function randn(shape: number[], key: string, scale = 1): Tensor {
  const t = new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  fillRandom(t.storage as Float32Array, 5 + grid.tp_rank, key, { kind: "normal", mean: 0, std: scale });
  return t;
}
/** This rank's positions of x [batch, seq, ...], as a new leaf. */
function mySlice(x: Tensor): Tensor {
  return x
    .narrow(1, rank * S_LOCAL, S_LOCAL)
    .contiguous()
    .detach();
}
function maxAbs(x: Tensor): number {
  return Math.max(...Array.from(x.values(), Math.abs));
}
function maxDiff(a: Tensor, b: Tensor): number {
  const [x, y] = [a.values(), b.values()];
  if (x.length !== y.length) throw new Error(`shapes [${a.shape}] and [${b.shape}] differ`);
  return Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i]!)));
}

for (const [name, { heads, kvHeads, qScale }] of Object.entries(CASES)) {
  const q = randn([B, S, heads, D], `${name}.q`, qScale).requiresGrad_();
  const k = randn([B, S, kvHeads, D], `${name}.k`).requiresGrad_();
  const v = randn([B, S, kvHeads, D], `${name}.v`).requiresGrad_();
  const dout = randn([B, S, heads, D], `${name}.dout`);
  const ref = F.causal_attention(q, k, v); // [batch, seq, heads, head_dim]
  ref.backward(dout);

  const [ql, kl, vl] = [mySlice(q).requiresGrad_(), mySlice(k).requiresGrad_(), mySlice(v).requiresGrad_()];
  const out = ring_attention(ql, kl, vl); // [batch, seq/cp, heads, head_dim]
  out.backward(mySlice(dout));

  const pairs: Record<string, [Tensor, Tensor]> = {
    output: [out, mySlice(ref)],
    dq: [ql.grad!, mySlice(q.grad!)],
    dk: [kl.grad!, mySlice(k.grad!)],
    dv: [vl.grad!, mySlice(v.grad!)],
  };
  const diffs: Record<string, number> = {};
  const scales: Record<string, number> = {};
  for (const [what, [mine, theirs]] of Object.entries(pairs)) {
    diffs[what] = maxDiff(mine, theirs);
    scales[what] = maxAbs(theirs);
  }
  console.log(JSON.stringify({ rank: grid.global_rank, cp: grid.cp_world_size, case: name, diffs, scales }));
}

let error = "";
try {
  ring_attention(
    randn([B, S_LOCAL, 4, D], "bad.q"),
    randn([B, S_LOCAL + 1, 2, D], "bad.k"),
    randn([B, S_LOCAL + 1, 2, D], "bad.v"),
  );
} catch (e) {
  error = (e as Error).message;
}
console.log(JSON.stringify({ rank: grid.global_rank, cp: grid.cp_world_size, case: "mismatched", error }));
