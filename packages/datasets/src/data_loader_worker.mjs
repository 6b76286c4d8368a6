// One worker thread of the DataLoader (data_loader.ts): worker w gathers batches w, w + W, w + 2W, ... (W
// workers) into slot k % S (S = 2W slots) as soon as the slot's previous batch, k - S, has been taken.
import { workerData } from "node:worker_threads";

const { plan, worker, tokens, control, ready, slots } = workerData;
const [CONSUMED, STOP, FAILED] = [0, 1, 2];
const numSlots = ready.length;
const rowLength = plan.seq_len + 1;
const batchLength = plan.batch_size * rowLength;

try {
  for (let k = worker; ; k += plan.num_workers) {
    // wait until batch k - S is taken, freeing the slot
    for (let c = Atomics.load(control, CONSUMED); c <= k - numSlots; c = Atomics.load(control, CONSUMED)) {
      if (Atomics.load(control, STOP)) break;
      Atomics.wait(control, CONSUMED, c);
    }
    if (Atomics.load(control, STOP)) break;
    const slot = k % numSlots;
    const first = plan.start + k * plan.batch_size * plan.num_replicas; // DataLoader.chunk(k, 0) - rank
    if (first + (plan.batch_size - 1) * plan.num_replicas + plan.rank >= plan.num_samples) break; // past the end
    for (let b = 0; b < plan.batch_size; b++) {
      const from = (first + b * plan.num_replicas + plan.rank) * plan.seq_len; // sampler.index(b)
      slots.set(tokens.subarray(from, from + rowLength), slot * batchLength + b * rowLength);
    }
    Atomics.store(ready, slot, k);
    Atomics.notify(ready, slot);
  }
} catch (err) {
  console.error(`dataloader worker ${worker}: ${err?.stack ?? err}`);
  Atomics.store(control, FAILED, 1);
}
