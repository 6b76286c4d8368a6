// Output buffers that a kernel overwrites entirely need no zero-fill: `new Float32Array(n)` clears every
// byte (a full extra pass over memory for the [tokens, vocab] logits and their gradient), Node's
// uninitialized allocation (Buffer.allocUnsafeSlow: never pooled, so each array owns its memory) does not.

/** A Float32Array of n elements with arbitrary contents: only for outputs that get every element written. */
export function uninitialized(n: number): Float32Array {
  return new Float32Array(Buffer.allocUnsafeSlow(n * 4).buffer, 0, n);
}
