// Context parallelism (the tutorial's context_parallel.py): the sequence is cut into cp contiguous slices,
// cp rank r holding positions [r * S/cp, (r + 1) * S/cp) of every sequence through the whole model. Every
// layer but attention works position by position, so only attention needs the other slices: ring attention
// passes the K/V blocks around the cp ring, one hop per step, and each rank attends to each block as it
// passes, with the transfer of the next block overlapping the computation on the current one.
//
// Causal masking by blocks: the block of an earlier rank is seen whole, the rank's own (diagonal) block
// causally, and the blocks of later ranks not at all (they hold only future positions), so they are skipped.
// With contiguous slices the work is unbalanced (rank r computes r + 1 blocks): the zig-zag layout that
// fixes it is left out of this tutorial.
//
// The partial results of the blocks are merged exactly through their log-sum-exps:
//   lse = log sum_i exp(lse_i),   out = sum_i exp(lse_i - lse) out_i.
import { defineFunction, F, Tensor, shapeStr } from "@picotron/tensor";
import { RingComm } from "./cp_communications.ts";
import { process_group_manager } from "./process_group_manager.ts";

// Message tags: the backward has K/V and their gradients in flight at once between the same ranks.
const KV_TAG = 0;
const DKV_TAG = 1;

/** [batch, seq/cp, heads, head_dim] */
type Dims = [number, number, number, number];

/** Attention of this rank's queries over some of the keys. */
interface BlockResult {
  out: Float32Array; // [batch, seq/cp, heads, head_dim]
  lse: Float32Array; // [batch, heads, seq/cp]
}

/** Throws unless q, k, v are this rank's slices: [batch, seq/cp, heads or kv_heads, head_dim], GQA-compatible. */
function checkShapes(q: Tensor, k: Tensor, v: Tensor): void {
  const fits =
    q.ndim === 4 &&
    k.ndim === 4 &&
    v.ndim === 4 &&
    v.shape.every((x, i) => x === k.shape[i]) &&
    [0, 1, 3].every((i) => q.shape[i] === k.shape[i]) &&
    q.shape[2]! % k.shape[2]! === 0;
  if (!fits) {
    throw new RangeError(
      `ring attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not fit: expected ` +
        `[batch, seq/cp, heads, head_dim] and two [batch, seq/cp, kv_heads, head_dim], heads % kv_heads == 0`,
    );
  }
}

/** K and V in one buffer [k | v], so that one message per hop carries the block. */
function packKV(k: Tensor, v: Tensor): Float32Array {
  const kv = new Float32Array(k.numel + v.numel);
  kv.set(k.values() as Float32Array);
  kv.set(v.values() as Float32Array, k.numel);
  return kv;
}

/** Views of the K and V halves of a packed buffer. */
function unpackKV(kv: Float32Array, shape: readonly number[]): [Tensor, Tensor] {
  const n = kv.length / 2;
  return [new Tensor(kv.subarray(0, n), shape), new Tensor(kv.subarray(n), shape)];
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i]!;
}

/**
 * Merges a block's partial attention into the running one, in place. With lse = log(exp(lse_acc) + exp(lse_blk)),
 *   out = exp(lse_acc - lse) out_acc + exp(lse_blk - lse) out_blk,
 * and lse computed as max + log(exp(lse_acc - max) + exp(lse_blk - max)), which cannot overflow.
 */
function mergeInto(acc: BlockResult, blk: BlockResult, [b, s, nh, d]: Dims): void {
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < nh; h++)
      for (let t = 0; t < s; t++) {
        const li = (bi * nh + h) * s + t; // lse [batch, heads, seq]
        const [la, lb] = [acc.lse[li]!, blk.lse[li]!];
        const max = Math.max(la, lb);
        const lse = max + Math.log(Math.exp(la - max) + Math.exp(lb - max));
        const [wa, wb] = [Math.exp(la - lse), Math.exp(lb - lse)];
        acc.lse[li] = lse;
        const oi = ((bi * s + t) * nh + h) * d; // out [batch, seq, heads, head_dim]
        for (let e = oi; e < oi + d; e++) acc.out[e] = wa * acc.out[e]! + wb * blk.out[e]!;
      }
}

/**
 * Causal attention of this cp rank's queries over the keys of all cp ranks (GQA supported).
 * q: [batch, seq/cp, heads, head_dim]; k, v: [batch, seq/cp, kv_heads, head_dim], this rank's slices of the
 * sequence; -> [batch, seq/cp, heads, head_dim], this rank's slice of causal attention over the whole sequence.
 */
export const ring_attention = defineFunction({
  name: "RingAttention",
  forward(ctx, q: Tensor, k: Tensor, v: Tensor): Tensor {
    checkShapes(q, k, v);
    const comm = new RingComm(process_group_manager.cp_group, KV_TAG);
    const { rank, world_size: n } = comm;
    let kv = packKV(k, v); // the block held at this step: cp rank (rank - step) mod n's
    let nextKV: Float32Array = new Float32Array(kv.length);
    let acc: BlockResult | null = null;
    for (let step = 0; step < n; step++) {
      if (step + 1 < n) comm.sendRecv(kv, nextKV); // pass the block on while computing with it
      // blocks of later ranks (step > rank) hold only future positions: nothing to attend to
      if (step <= rank) {
        const [kb, vb] = unpackKV(kv, k.shape);
        const blk = F.block_attention_forward(q, kb, vb, step === 0); // the own block is the diagonal one
        const part = { out: blk.out.values() as Float32Array, lse: blk.lse.values() as Float32Array };
        if (acc === null) acc = part;
        else mergeInto(acc, part, q.shape as Dims);
      }
      if (step + 1 < n) {
        comm.wait();
        [kv, nextKV] = [nextKV, kv]; // the sent buffer is free: it receives the next block
      }
    }
    const out = new Tensor(acc!.out, q.shape);
    const lse = new Tensor(acc!.lse, [q.shape[0]!, q.shape[2]!, q.shape[1]!]); // [batch, heads, seq/cp]
    // O(seq/cp) per query saved, where plain attention keeps its [seq, seq] probabilities
    ctx.saved = [q, k, v, out, lse];
    return out;
  },
  // Each block's share of the gradients is recomputed from the saved final lse and output (see
  // block_attention.ts). dQ stays here; a block's dK/dV travel with the block around the ring, each rank
  // adding its share, and after n hops arrive back at the block's owner complete.
  backward(ctx, dout) {
    const [q, k, v, out, lse] = ctx.saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const kvComm = new RingComm(process_group_manager.cp_group, KV_TAG);
    const dkvComm = new RingComm(process_group_manager.cp_group, DKV_TAG);
    const { rank, world_size: n } = kvComm;
    let kv = packKV(k, v);
    let nextKV: Float32Array = new Float32Array(kv.length);
    let dkv: Float32Array = new Float32Array(kv.length); // [dK | dV] of the block held, as accumulated so far
    let nextDKV: Float32Array = new Float32Array(kv.length);
    const dq = new Float32Array(q.numel); // [batch, seq/cp, heads, head_dim]
    for (let step = 0; step < n; step++) {
      if (step + 1 < n) kvComm.sendRecv(kv, nextKV);
      const [kb, vb] = unpackKV(kv, k.shape);
      const g = step <= rank ? F.block_attention_backward(dout, q, kb, vb, out, lse, step === 0) : null;
      if (step > 0) {
        dkvComm.wait(); // the held block's gradient so far, from the previous rank
        [dkv, nextDKV] = [nextDKV, dkv];
      }
      if (g !== null) {
        addInto(dq, g.dq.values() as Float32Array);
        addInto(dkv.subarray(0, k.numel), g.dk.values() as Float32Array);
        addInto(dkv.subarray(k.numel), g.dv.values() as Float32Array);
      }
      if (step + 1 < n) {
        kvComm.wait();
        [kv, nextKV] = [nextKV, kv];
      }
      if (n > 1) dkvComm.sendRecv(dkv, nextDKV); // on with the block, overlapping the next step
    }
    if (n > 1) {
      dkvComm.wait(); // this rank's own block's gradient, complete
      dkv = nextDKV;
    }
    const [dk, dv] = unpackKV(dkv, k.shape);
    return [new Tensor(dq, q.shape), dk, dv];
  },
});

/**
 * This cp rank's rows of the RoPE tables cos, sin [max_positions, head_dim]: its seqPerRank positions start at
 * cp_rank * seqPerRank (the dataloader's slice), so each query and key is rotated by its place in the sequence.
 */
export function update_rope_for_context_parallel(
  cos: Tensor,
  sin: Tensor,
  seqPerRank: number,
): [Tensor, Tensor] {
  const first = process_group_manager.cp_rank * seqPerRank;
  return [cos.narrow(0, first, seqPerRank), sin.narrow(0, first, seqPerRank)];
}
