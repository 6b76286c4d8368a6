// Point-to-point communication between neighbouring pipeline stages (the tutorial's pipeline_communicate).
// Stage p talks to the same (dp, tp) coordinates at pp rank p +- 1 (pp_prev_rank / pp_next_rank are world
// ranks). Activations [mbs, seq, hidden] flow forward and their gradients backward; each direction has its
// own tag. The first stage receives nothing from before it, the last sends nothing after it.
import { waitAll } from "@picotron/mpi-napi";
import { numelOf, Tensor } from "@picotron/tensor";
import * as pgm from "./process_group_manager.ts";
import { tracer } from "./trace.ts";

const FORWARD_TAG = 1;
const BACKWARD_TAG = 2;

/** The previous stage's activation (shape [mbs, seq, hidden]) as a leaf that collects its gradient; null on the first stage. */
export function recv_forward(shape: readonly number[]): Tensor | null {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return null;
  const buf = new Float32Array(numelOf(shape));
  tracer.span("recv_forward", "p2p", () => world_group.recv(buf, prev, FORWARD_TAG));
  return new Tensor(buf, shape).requiresGrad_();
}

/** Sends this stage's activation to the next stage (nothing on the last stage). */
export function send_forward(output: Tensor): void {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return;
  tracer.span("send_forward", "p2p", () =>
    world_group.send(output.values() as Float32Array, next, FORWARD_TAG),
  );
}

/** The gradient of this stage's output (shape [mbs, seq, hidden]) from the next stage; null on the last stage. */
export function recv_backward(shape: readonly number[]): Tensor | null {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return null;
  const buf = new Float32Array(numelOf(shape));
  tracer.span("recv_backward", "p2p", () => world_group.recv(buf, next, BACKWARD_TAG));
  return new Tensor(buf, shape);
}

/** Sends the gradient of this stage's input back to the previous stage (nothing on the first stage). */
export function send_backward(inputGrad: Tensor | null): void {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return;
  if (!inputGrad) throw new Error("send_backward: no input gradient to send to the previous stage");
  tracer.span("send_backward", "p2p", () =>
    world_group.send(inputGrad.values() as Float32Array, prev, BACKWARD_TAG),
  );
}

// 1F1B's steady state exchanges in both directions at once: a stage sends its activation forward while the
// next stage sends a gradient back. Both sides post a non-blocking send and receive and wait for the two, so
// neither waits for the other to receive first.

/** Sends this stage's activation forward and receives its gradient from the next stage; null on the last stage. */
export function send_fwd_recv_bwd(output: Tensor, shape: readonly number[]): Tensor | null {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return null;
  const grad = new Float32Array(numelOf(shape));
  tracer.span("send_fwd_recv_bwd", "p2p", () =>
    waitAll([
      world_group.isend(output.values() as Float32Array, next, FORWARD_TAG),
      world_group.irecv(grad, next, BACKWARD_TAG),
    ]),
  );
  return new Tensor(grad, shape);
}

/** Sends the input's gradient back and receives the next micro-batch's activation; null on the first stage. */
export function send_bwd_recv_fwd(inputGrad: Tensor | null, shape: readonly number[]): Tensor | null {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return null;
  if (!inputGrad) throw new Error("send_bwd_recv_fwd: no input gradient to send to the previous stage");
  const input = new Float32Array(numelOf(shape));
  tracer.span("send_bwd_recv_fwd", "p2p", () =>
    waitAll([
      world_group.isend(inputGrad.values() as Float32Array, prev, BACKWARD_TAG),
      world_group.irecv(input, prev, FORWARD_TAG),
    ]),
  );
  return new Tensor(input, shape).requiresGrad_();
}
