// Checkpoints (as picotron's checkpoint.py): model weights as safetensors with picotron's names, the
// optimizer's moments, and the training state (step, trained tokens, dataloader position, seed).
//
//   save_dir/step_000100/model_tp0_pp0.safetensors      one file per shard: a step says which rank writes
//   save_dir/step_000100/optimizer_tp0_pp0.safetensors  which shard (replicas of a shard write nothing)
//   save_dir/step_000100/state.json                      written last: its presence marks a whole checkpoint
//
// What a step's parallelism changes is only the shard: its name (which slice of the model this rank holds)
// and whether this rank writes it. Everything else is the same for every layout and lives here.
//
// Writes are atomic: everything goes into a hidden temporary folder that is renamed into place at the end,
// so a crash mid-save never leaves a half checkpoint, and never touches the previous ones.
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "@picotron/argparse";
import { loadSafetensors, saveSafetensors, type nn, type optim, Tensor } from "@picotron/tensor";

export interface TrainingState {
  step: number;
  trained_tokens: number;
  dataloader: { next_sample: number };
  /** The only randomness: the init is a function of (seed, name) and training draws no random numbers. */
  seed: number;
  /** What must match to resume: model config and parallel layout. */
  fingerprint: Record<string, unknown>;
}

/** This rank's part of a checkpoint: the file-name suffix of its slice, and whether it writes it. */
export interface Shard {
  name: string;
  writer: boolean;
}

/** What saving needs of the world communicator: who decides (rank 0), and a barrier. */
export interface Barrier {
  readonly rank: number;
  barrier(): void;
}

const STEP_DIR = /^step_(\d+)$/;

/** A checkpoint that cannot be used (missing, foreign, another run's): the user's to fix, one line. */
export class CheckpointError extends UsageError {}

/** Saves this rank's shard (collective: every rank of `world` calls it). Returns the checkpoint's folder. */
export function saveCheckpoint(
  saveDir: string,
  world: Barrier,
  shard: Shard,
  model: nn.Module,
  optimizer: optim.AdamW,
  state: TrainingState,
): string {
  const final = path.join(saveDir, `step_${String(state.step).padStart(6, "0")}`);
  const tmp = path.join(saveDir, `.tmp-step_${state.step}`);
  if (world.rank === 0) {
    fs.mkdirSync(saveDir, { recursive: true });
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
  }
  world.barrier();
  if (shard.writer) {
    saveSafetensors(path.join(tmp, `model_${shard.name}.safetensors`), model.stateDict(), { format: "pt" });
    const opt = optimizer.stateDict();
    saveSafetensors(path.join(tmp, `optimizer_${shard.name}.safetensors`), opt.tensors, {
      step: String(opt.step),
    });
  }
  world.barrier();
  if (world.rank === 0) {
    fs.writeFileSync(path.join(tmp, "state.json"), JSON.stringify(state, null, 1));
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
  }
  world.barrier();
  return final;
}

/** The newest complete checkpoint in saveDir (one with its state.json), or null. */
export function latestCheckpoint(saveDir: string): string | null {
  if (!fs.existsSync(saveDir)) return null;
  const steps = fs
    .readdirSync(saveDir)
    .filter((d) => STEP_DIR.test(d) && fs.existsSync(path.join(saveDir, d, "state.json")))
    .sort();
  return steps.length ? path.join(saveDir, steps.at(-1)!) : null;
}

/** Loads this rank's shard into the model and optimizer; returns the training state to continue from. */
export function loadCheckpoint(
  dir: string,
  shard: Shard,
  model: nn.Module,
  optimizer: optim.AdamW,
  fingerprint: Record<string, unknown>,
): TrainingState {
  const stateFile = path.join(dir, "state.json");
  if (!fs.existsSync(stateFile))
    throw new CheckpointError(`${dir}: not a checkpoint (no state.json: incomplete or foreign)`);
  let state: TrainingState;
  try {
    state = JSON.parse(fs.readFileSync(stateFile, "utf8"));
  } catch (err) {
    throw new CheckpointError(`${stateFile}: unreadable (${(err as Error).message})`);
  }
  if (
    typeof state.step !== "number" ||
    typeof state.dataloader?.next_sample !== "number" ||
    !state.fingerprint
  ) {
    throw new CheckpointError(
      `${stateFile}: missing step, dataloader position or fingerprint: not a picotron-ts checkpoint`,
    );
  }
  const want = JSON.stringify(fingerprint);
  const have = JSON.stringify(state.fingerprint);
  if (want !== have) {
    throw new CheckpointError(
      `${dir} was saved by a different run configuration:\n  checkpoint: ${have}\n  this run:   ${want}`,
    );
  }
  const weights = loadSafetensors(path.join(dir, `model_${shard.name}.safetensors`)).tensors;
  try {
    model.loadStateDict(weights);
  } catch (err) {
    throw new CheckpointError(`${dir}: ${(err as Error).message}`);
  }
  const opt = loadSafetensors(path.join(dir, `optimizer_${shard.name}.safetensors`));
  optimizer.loadStateDict({ step: Number(opt.metadata.step), tensors: opt.tensors });
  return state;
}

/** Hugging Face Llama parameter names -> the tutorial's. */
function hfToPicotron(name: string): string | null {
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (layer) {
    const [, i, rest] = layer;
    const mapped = rest!
      .replace(/^self_attn\.o_proj/, "attention.out_proj")
      .replace(/^self_attn\./, "attention.");
    return `decoder_layers.${i}.${mapped}`;
  }
  const top: Record<string, string> = {
    "model.embed_tokens.weight": "embedding.weight",
    "model.norm.weight": "final_norm.weight",
    "lm_head.weight": "final_proj.weight",
  };
  return top[name] ?? null;
}

/**
 * Pretrained weights from a local Hugging Face Llama directory (config.json + model.safetensors):
 * HF names mapped to the tutorial's; a tied lm_head (absent from the file) reuses the embedding.
 */
export function loadPretrained(dir: string, model: nn.Module): void {
  const file = path.join(dir, "model.safetensors");
  if (!fs.existsSync(file)) throw new CheckpointError(`--init_from_pretrained: ${file} does not exist`);
  const hf = loadSafetensors(file).tensors;
  const state: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(hf)) {
    const ours = hfToPicotron(name);
    if (ours) state[ours] = t;
  }
  state["final_proj.weight"] ??= state["embedding.weight"]!;
  // a model that holds only some of the layers (a pipeline stage) takes only its own weights
  const own = model.stateDict();
  for (const name of Object.keys(state)) if (!(name in own)) delete state[name];
  // the padded vocabulary can be larger than the checkpoint's: extra rows stay zero
  for (const key of ["embedding.weight", "final_proj.weight"]) {
    const src = state[key];
    const dst = own[key];
    if (src && dst && src.shape[0]! < dst.shape[0]! && src.shape[1] === dst.shape[1]) {
      const padded = new Float32Array(dst.numel);
      padded.set(src.values() as Float32Array);
      state[key] = new Tensor(padded, dst.shape);
    }
  }
  try {
    model.loadStateDict(state);
  } catch (err) {
    throw new CheckpointError(`--init_from_pretrained ${dir}: ${(err as Error).message}`);
  }
}

/**
 * One run's checkpoints (picotron's CheckpointManager): where they go, which shard this rank holds, and
 * what a checkpoint must match to be resumed.
 */
export class CheckpointManager {
  constructor(
    readonly save_dir: string,
    private readonly world: Barrier,
    private readonly shard: Shard,
    private readonly fingerprint: Record<string, unknown>,
  ) {}

  /** Saves this rank's shard of the model and optimizer with the training state; returns the folder. */
  save_checkpoint(
    model: nn.Module,
    optimizer: optim.AdamW,
    state: Omit<TrainingState, "fingerprint">,
  ): string {
    return saveCheckpoint(this.save_dir, this.world, this.shard, model, optimizer, {
      ...state,
      fingerprint: this.fingerprint,
    });
  }

  /** Loads the newest checkpoint into the model and optimizer; returns its folder and training state. */
  load_checkpoint(model: nn.Module, optimizer: optim.AdamW): { dir: string; state: TrainingState } {
    const dir = latestCheckpoint(this.save_dir);
    if (!dir) throw new CheckpointError(`--resume: no checkpoint in ${this.save_dir}`);
    return { dir, state: loadCheckpoint(dir, this.shard, model, optimizer, this.fingerprint) };
  }
}
