// PP communications: point to point with the neighbouring stages (pp_prev_rank / pp_next_rank, world ranks);
// activations [mbs, seq, hidden] go forward, their gradients back, each direction with its own tag.
import { waitAll } from "@picotron/mpi-napi";
import { tracer } from "@picotron/profiler";
import { numelOf, Tensor } from "@picotron/tensor";
import * as pgm from "./process_group_manager.ts";

const TAGS = { forward: 1, backward: 2 };

/** Receives a tensor of `shapes` (returned), or sends `tensor`; null when the stage has no such neighbour. */
export function pipeline_communicate(
  operation: "recv_forward" | "send_forward" | "recv_backward" | "send_backward",
  { tensor = null, shapes = [] }: { tensor?: Tensor | null; shapes?: readonly number[] },
): Tensor | null {
  const { pp_prev_rank, pp_next_rank, world_group } = pgm.process_group_manager;
  const is_send = operation.startsWith("send");
  const direction = operation.endsWith("forward") ? "forward" : "backward";
  // forward: from the previous stage to the next one; backward: the other way
  const peer_rank = is_send === (direction === "forward") ? pp_next_rank : pp_prev_rank;
  if (peer_rank === null) return null;
  if (is_send) {
    if (!tensor) throw new Error(`${operation}: nothing to send to rank ${peer_rank}`);
    const data = tensor.values() as Float32Array;
    tracer.span(operation, "p2p", () => world_group.send(data, peer_rank, TAGS[direction]));
    return null;
  }
  const data = new Float32Array(numelOf(shapes));
  tracer.span(operation, "p2p", () => world_group.recv(data, peer_rank, TAGS[direction]));
  // a received activation is a leaf that collects its gradient, for send_backward
  return direction === "forward" ? new Tensor(data, shapes).requiresGrad_() : new Tensor(data, shapes);
}

/**
 * 1F1B's steady state sends one way while receiving from the same neighbour: both sides post a non-blocking
 * send and receive and wait for the two, so neither waits for the other. Null at the pipeline's ends.
 */
export function bidirectional_pipeline_communicate(
  operation: "send_fwd_recv_bwd" | "send_bwd_recv_fwd",
  send_tensor: Tensor | null,
  recv_shapes: readonly number[],
): Tensor | null {
  const { pp_prev_rank, pp_next_rank, world_group } = pgm.process_group_manager;
  const is_fwd = operation === "send_fwd_recv_bwd";
  const peer_rank = is_fwd ? pp_next_rank : pp_prev_rank;
  if (peer_rank === null) return null;
  if (!send_tensor) throw new Error(`${operation}: nothing to send to rank ${peer_rank}`);
  const [send_data, recv_data] = [
    send_tensor.values() as Float32Array,
    new Float32Array(numelOf(recv_shapes)),
  ];
  const [send_tag, recv_tag] = is_fwd ? [TAGS.forward, TAGS.backward] : [TAGS.backward, TAGS.forward];
  tracer.span(operation, "p2p", () =>
    waitAll([
      world_group.isend(send_data, peer_rank, send_tag),
      world_group.irecv(recv_data, peer_rank, recv_tag),
    ]),
  );
  return is_fwd ? new Tensor(recv_data, recv_shapes) : new Tensor(recv_data, recv_shapes).requiresGrad_();
}
