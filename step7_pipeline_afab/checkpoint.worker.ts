// Test worker for checkpoint.test.ts: `crash DIR` saves step 1, then dies (SIGKILL) in the middle of saving
// step 2; `check DIR` loads the newest checkpoint and reports what it found, then saves step 2 again.
import { optim } from "@picotron/tensor";
import { PRESETS } from "@picotron/transformers";
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainingState } from "./checkpoint.ts";
import { Llama } from "./model.ts";
import { setup_process_group_manager } from "./process_group_manager.ts";

const [mode, saveDir] = process.argv.slice(2) as ["crash" | "check", string];
const grid = setup_process_group_manager(1, 1, 1);
const config = {
  ...PRESETS["HuggingFaceTB/SmolLM-135M"]!,
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 16,
};
const fingerprint = { model: config };
const state = (step: number): TrainingState => ({
  step,
  trained_tokens: step * 100,
  dataloader: { next_sample: step * 4 },
  seed: 1,
  fingerprint,
});

const model = new Llama(config).initWeights(1);
const optimizer = new optim.AdamW(model.parameters());
if (mode === "crash") {
  saveCheckpoint(saveDir, grid, model, optimizer, state(1));
  // the model file of step 2 is written, then the process dies before the optimizer's
  for (const p of model.parameters()) (p.storage as Float32Array).fill(7);
  optimizer.stateDict = () => process.kill(process.pid, "SIGKILL") as never;
  saveCheckpoint(saveDir, grid, model, optimizer, state(2));
} else {
  const dir = latestCheckpoint(saveDir)!;
  const fresh = new Llama(config);
  const loaded = loadCheckpoint(dir, grid, fresh, new optim.AdamW(fresh.parameters()), fingerprint);
  const same = fresh.parameters().every((p, i) => {
    const want = model.parameters()[i]!.values();
    return p.values().every((v, j) => v === want[j]);
  });
  saveCheckpoint(saveDir, grid, model, optimizer, state(2));
  console.log(JSON.stringify({ dir, step: loaded.step, same, after: latestCheckpoint(saveDir) }));
}
