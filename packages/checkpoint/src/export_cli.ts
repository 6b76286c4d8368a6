// `pnpm export -- --checkpoint DIR --out HF_DIR`: a checkpoint of any layout as a Hugging Face Llama folder
// (config.json, model.safetensors, tokenizer files with --tokenizer), which transformers' from_pretrained
// and our --init_from_pretrained read.
import fs from "node:fs";
import path from "node:path";
import { parse_args, UsageError } from "@picotron/argparse";
import { exportToHf } from "./export.ts";
import { latestCheckpoint } from "./index.ts";

const args = parse_args("Export a picotron-ts checkpoint to a Hugging Face Llama folder", {
  checkpoint: {
    type: "path",
    help: "a checkpoint folder (save_dir/step_NNNNNN), or a --save_dir (its newest checkpoint)",
  },
  out: { type: "path", writable: true, help: "the Hugging Face folder to write" },
  tokenizer: {
    type: "path",
    help:
      "a folder holding the run's tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) to copy " +
      "beside the weights (default: the tokenizer the checkpoint records, when it is such a folder)",
  },
});

if (!args.checkpoint) throw new UsageError("--checkpoint is required (a save_dir/step_NNNNNN folder)");
if (!args.out) throw new UsageError("--out is required (the Hugging Face folder to write)");
let dir = args.checkpoint;
if (!fs.existsSync(path.join(dir, "state.json"))) {
  // a --save_dir: its newest complete checkpoint
  const newest = latestCheckpoint(dir);
  if (!newest) throw new UsageError(`--checkpoint ${dir}: neither a checkpoint (state.json) nor a save_dir`);
  dir = newest;
}
// the checkpoint records its run's tokenizer (the dataloader's state): a local folder's files go along
const recorded = (
  JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as {
    dataloader?: { tokenizer?: string };
  }
).dataloader?.tokenizer;
const tokenizer =
  args.tokenizer ?? (recorded && fs.existsSync(path.join(recorded, "tokenizer.json")) ? recorded : undefined);
const files = exportToHf(dir, args.out, tokenizer);
console.log(`exported ${dir} -> ${args.out}: ${files.join(", ")}`);
