import { Generator, optim, setNumThreads } from "@picotron/tensor";
import { Llama, lossFn } from "./model.ts";
import { randint } from "./utils.ts";
setNumThreads(1);
const config = { vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 4, num_attention_heads: 9, num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 256 };
const model = new Llama(config).initWeights(0);
const opt = new optim.AdamW(model.parameters());
const ids = randint(new Generator(0), 49152, [4, 257]);
const input = ids.narrow(1, 0, 256).contiguous(), target = ids.narrow(1, 1, 256).contiguous();
for (let s = 0; s < 4; s++) {
  const r0 = process.resourceUsage(); const t0 = performance.now();
  opt.zeroGrad();
  const logits = model.forward(input); const t1 = performance.now();
  const loss = lossFn(logits, target); const t2 = performance.now();
  loss.backward(); const t3 = performance.now();
  opt.step(); const t4 = performance.now();
  const r1 = process.resourceUsage();
  console.log(`step ${s}: total ${(t4 - t0).toFixed(0)}ms fwd ${(t1 - t0).toFixed(0)} ce ${(t2 - t1).toFixed(0)} bwd ${(t3 - t2).toFixed(0)} adam ${(t4 - t3).toFixed(0)} | user ${((r1.userCPUTime - r0.userCPUTime) / 1e3).toFixed(0)} sys ${((r1.systemCPUTime - r0.systemCPUTime) / 1e3).toFixed(0)} majflt ${r1.minorPageFault - r0.minorPageFault}`);
}
