// Output buffers that a kernel overwrites entirely need no zero-fill: `new Float32Array(n)` clears every
// byte (a full extra pass over memory for the [tokens, vocab] logits and their gradient), Node's
// uninitialized allocation (Buffer.allocUnsafeSlow: never pooled, so each array owns its memory) does not.
//
// They also reuse the gradients autograd is done with. Every new ArrayBuffer counts toward V8's external
// memory, and each 64 MB of it starts a garbage-collector cycle whose marking thread takes a core from the
// threads of the matrix products; a training step allocates over a gigabyte. Autograd hands back a
// gradient's memory once the op it flowed into has run, when nothing else can hold it (autograd.ts);
// the next buffer of the same length takes it, in this backward pass or the next forward.
import { setGradientRecycler } from "../autograd.ts";

const reusable = new Map<number, Float32Array[]>(); // by length
let reusableBytes = 0;
// What may wait for reuse (between steps, the last backward's gradients): two [tokens, vocab] buffers of
// the bench (201 MB each) and change; and at most this many of one length.
const REUSABLE_LIMIT = 512 * 2 ** 20;
const PER_LENGTH = 16;

/** A Float32Array of n elements with arbitrary contents: only for outputs that get every element written. */
export function uninitialized(n: number): Float32Array {
  const a = reusable.get(n)?.pop();
  if (a) {
    reusableBytes -= a.byteLength;
    return a;
  }
  return new Float32Array(Buffer.allocUnsafeSlow(n * 4).buffer, 0, n);
}

/** Keeps a whole buffer that nothing references any more for the next uninitialized() of its length. */
function reuseLater(a: Float32Array): void {
  if (a.length === 0 || reusableBytes + a.byteLength > REUSABLE_LIMIT) return;
  const list = reusable.get(a.length) ?? [];
  if (list.length >= PER_LENGTH) return;
  if (list.includes(a)) throw new Error("a gradient buffer was handed back twice");
  list.push(a);
  reusable.set(a.length, list);
  reusableBytes += a.byteLength;
}

setGradientRecycler(reuseLater);
