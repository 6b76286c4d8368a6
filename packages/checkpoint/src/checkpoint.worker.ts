// Test worker for checkpoint.test.ts: `crash DIR` saves step 1, then dies (SIGKILL) in the middle of saving
// step 2; `check DIR` loads the newest checkpoint and reports what it found, then saves step 2 again.
import { nn, optim } from "@picotron/tensor";
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainingState } from "./index.ts";

class Tiny extends nn.Module {
  embedding = new nn.Embedding(16, 8);
  proj = new nn.Linear(8, 4);
}

const [mode, saveDir] = process.argv.slice(2) as ["crash" | "check", string];
const world = { rank: 0, barrier: () => {}, allreduce: () => {} }; // one process: a world of one
const shard = { name: "tp0_pp0", writer: true };
const fingerprint = { model: "tiny" };
const state = (step: number): TrainingState => ({
  step,
  trained_tokens: step * 100,
  dataloader: { next_sample: step * 4 },
  seed: 1,
  fingerprint,
});

const model = new Tiny().initWeights(1);
const optimizer = new optim.AdamW(model.parameters());
if (mode === "crash") {
  saveCheckpoint(saveDir, world, shard, model, optimizer, state(1));
  // the model file of step 2 is written, then the process dies before the optimizer's
  for (const p of model.parameters()) (p.storage as Float32Array).fill(7);
  optimizer.stateDict = () => process.kill(process.pid, "SIGKILL") as never;
  saveCheckpoint(saveDir, world, shard, model, optimizer, state(2));
} else {
  const dir = latestCheckpoint(saveDir)!;
  const fresh = new Tiny();
  const loaded = loadCheckpoint(dir, shard, fresh, new optim.AdamW(fresh.parameters()), fingerprint);
  const same = fresh.parameters().every((p, i) => {
    const want = model.parameters()[i]!.values();
    return p.values().every((v, j) => v === want[j]);
  });
  saveCheckpoint(saveDir, world, shard, model, optimizer, state(2));
  console.log(JSON.stringify({ dir, step: loaded.step, same, after: latestCheckpoint(saveDir) }));
}
