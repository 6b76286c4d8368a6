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
export function recv_forward(shapes: readonly number[]): Tensor | null {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return null;
  const buf = new Float32Array(numelOf(shapes));
  tracer.span("recv_forward", "p2p", () => world_group.recv(buf, prev, FORWARD_TAG));
  return new Tensor(buf, shapes).requiresGrad_();
}

/** Sends this stage's activation to the next stage (nothing on the last stage). */
export function send_forward(tensor: Tensor): void {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return;
  tracer.span("send_forward", "p2p", () =>
    world_group.send(tensor.values() as Float32Array, next, FORWARD_TAG),
  );
}

/** The gradient of this stage's tensor (shape [mbs, seq, hidden]) from the next stage; null on the last stage. */
export function recv_backward(shapes: readonly number[]): Tensor | null {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return null;
  const buf = new Float32Array(numelOf(shapes));
  tracer.span("recv_backward", "p2p", () => world_group.recv(buf, next, BACKWARD_TAG));
  return new Tensor(buf, shapes);
}

/** Sends the gradient of this stage's input back to the previous stage (nothing on the first stage). */
export function send_backward(tensor: Tensor | null): void {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return;
  if (!tensor) throw new Error("send_backward: no input gradient to send to the previous stage");
  tracer.span("send_backward", "p2p", () =>
    world_group.send(tensor.values() as Float32Array, prev, BACKWARD_TAG),
  );
}

// 1F1B's steady state exchanges in both directions at once: a stage sends its activation forward while the
// next stage sends a gradient back. Both sides post a non-blocking send and receive and wait for the two, so
// neither waits for the other to receive first.

/** Sends this stage's activation forward and receives its gradient from the next stage; null on the last stage. */
export function send_fwd_recv_bwd(send_tensor: Tensor, recv_shapes: readonly number[]): Tensor | null {
  const { pp_next_rank: next, world_group } = pgm.process_group_manager;
  if (next === null) return null;
  const recv_tensor = new Float32Array(numelOf(recv_shapes));
  tracer.span("send_fwd_recv_bwd", "p2p", () =>
    waitAll([
      world_group.isend(send_tensor.values() as Float32Array, next, FORWARD_TAG),
      world_group.irecv(recv_tensor, next, BACKWARD_TAG),
    ]),
  );
  return new Tensor(recv_tensor, recv_shapes);
}

/** Sends the input's gradient back and receives the next micro-batch's activation; null on the first stage. */
export function send_bwd_recv_fwd(send_tensor: Tensor | null, recv_shapes: readonly number[]): Tensor | null {
  const { pp_prev_rank: prev, world_group } = pgm.process_group_manager;
  if (prev === null) return null;
  if (!send_tensor)
    throw new Error("send_bwd_recv_fwd: no recv_tensor gradient to send to the previous stage");
  const recv_tensor = new Float32Array(numelOf(recv_shapes));
  tracer.span("send_bwd_recv_fwd", "p2p", () =>
    waitAll([
      world_group.isend(send_tensor.values() as Float32Array, prev, BACKWARD_TAG),
      world_group.irecv(recv_tensor, prev, FORWARD_TAG),
    ]),
  );
  return new Tensor(recv_tensor, recv_shapes).requiresGrad_();
}
