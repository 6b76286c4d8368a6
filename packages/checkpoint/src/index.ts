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
import { describeLayout, fingerprintDiff, loadResharded } from "./reshard.ts";

export interface TrainingState {
  step: number;
  trained_tokens: number;
  dataloader: { next_sample: number };
  /** The only randomness: the init is a function of (seed, name) and training draws no random numbers. */
  seed: number;
  /** What must match to resume: model config, seq_len, global batch (a different layout is re-sharded). */
  fingerprint: Record<string, unknown>;
}

/** This rank's part of a checkpoint: the file-name suffix of its slice, and whether it writes it. */
export interface Shard {
  name: string;
  writer: boolean;
}

/** What saving and loading need of the world communicator: who decides (rank 0), a barrier, agreement. */
export interface Barrier {
  readonly rank: number;
  barrier(): void;
  allreduce(buf: Int32Array, op: "min"): void;
}

/** The checkpoint flags, spread into a step's parse_args. */
export const checkpoint_args = {
  save_dir: { type: "path", writable: true, help: "checkpoint folder (unset: no checkpoints)" },
  save_frequency: { type: "int", default: 0, min: 0, help: "save every N steps (0: at the end, on Ctrl-C)" },
  resume: {
    type: "bool",
    default: false,
    requires: "save_dir",
    help: "continue from the newest in --save_dir",
  },
} as const;

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
    removeLeftovers(saveDir); // of saves that failed (a crash, a full disk): never a checkpoint
    fs.mkdirSync(tmp);
  }
  world.barrier();
  try {
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
  } catch (err) {
    // a full or failing disk: what was saved before stays whole; the half-written folder goes
    fs.rmSync(tmp, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOSPC" ? "no space left on the device" : e.message;
    throw new CheckpointError(
      `--save_dir ${saveDir}: saving step ${state.step} failed (${why}); the checkpoints before it are untouched`,
    );
  }
  world.barrier();
  return final;
}

/** The hidden folders that failed saves left behind (a save in progress is never seen: saves are collective). */
export function removeLeftovers(saveDir: string): void {
  if (!fs.existsSync(saveDir)) return;
  for (const d of fs.readdirSync(saveDir))
    if (d.startsWith(".tmp-step_")) fs.rmSync(path.join(saveDir, d), { recursive: true, force: true });
}

/** The complete checkpoints in saveDir (those with their state.json), newest first. */
export function completeCheckpoints(saveDir: string): string[] {
  if (!fs.existsSync(saveDir)) return [];
  return fs
    .readdirSync(saveDir)
    .filter((d) => STEP_DIR.test(d) && fs.existsSync(path.join(saveDir, d, "state.json")))
    .sort()
    .reverse()
    .map((d) => path.join(saveDir, d));
}

/** The newest complete checkpoint in saveDir, or null. */
export function latestCheckpoint(saveDir: string): string | null {
  return completeCheckpoints(saveDir)[0] ?? null;
}

/** A checkpoint of another run (model, seq_len, batch): resuming from an older one of it would be as wrong. */
export class CheckpointMismatchError extends CheckpointError {}

/**
 * Loads this rank's shard into the model and optimizer; returns the training state to continue from. A
 * checkpoint of another layout of the same model (only the fingerprint's `layout` differs) is re-sharded.
 */
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
  // the same model in another layout is re-sharded; anything else (model, seq_len, batch) is another run
  const diff = fingerprintDiff(fingerprint, state.fingerprint);
  const other = diff.filter((d) => d.field !== "layout");
  if (other.length) {
    const what = other.map((d) => `${d.field} ${d.here} here, ${d.checkpoint} in the checkpoint`);
    throw new CheckpointMismatchError(
      `${dir} was saved by a different run configuration: ${what.join("; ")}`,
    );
  }
  if (diff.length) {
    loadResharded(dir, model, optimizer);
    return state;
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
  // a relative folder is the user's (pnpm runs the script inside its package; INIT_CWD is where they were)
  const file = path.resolve(process.env.INIT_CWD ?? process.cwd(), dir, "model.safetensors");
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
  readonly save_dir: string;
  readonly save_frequency: number;
  constructor(
    args: { save_dir: string; save_frequency: number },
    private readonly world: Barrier,
    private readonly shard: Shard,
    private readonly fingerprint: Record<string, unknown>,
  ) {
    this.save_dir = args.save_dir;
    this.save_frequency = args.save_frequency;
  }

  /** The run's manager, or null when it saves nothing (no --save_dir). */
  static fromArgs(
    args: { save_dir?: string; save_frequency: number },
    world: Barrier,
    shard: Shard,
    fingerprint: Record<string, unknown>,
  ): CheckpointManager | null {
    const { save_dir, save_frequency } = args;
    return save_dir ? new CheckpointManager({ save_dir, save_frequency }, world, shard, fingerprint) : null;
  }

  /** Whether to save after `step`: every save_frequency steps, and always at the last step of a run. */
  should_save(step: number, last: boolean): boolean {
    return last || (this.save_frequency > 0 && step % this.save_frequency === 0);
  }

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

  /**
   * Loads the newest valid checkpoint into the model and optimizer; returns its folder and training state.
   * A damaged one (unreadable state, a truncated or missing shard on any rank) is skipped with a warning
   * naming it, for the one before; every rank agrees on which. One of another layout is re-sharded (a line
   * on rank 0 says so); another run's is refused.
   */
  load_checkpoint(model: nn.Module, optimizer: optim.AdamW): { dir: string; state: TrainingState } {
    if (this.world.rank === 0) removeLeftovers(this.save_dir);
    const candidates = completeCheckpoints(this.save_dir);
    for (const dir of candidates) {
      let state: TrainingState | null = null;
      let problem = "";
      try {
        state = loadCheckpoint(dir, this.shard, model, optimizer, this.fingerprint);
      } catch (err) {
        if (err instanceof CheckpointMismatchError) throw err;
        problem = (err as Error).message;
      }
      const ok = new Int32Array([state ? 1 : 0]);
      this.world.allreduce(ok, "min"); // every rank's shard must have loaded
      if (state && ok[0] === 1) {
        const [from, to] = [state.fingerprint.layout, this.fingerprint.layout];
        if (this.world.rank === 0 && JSON.stringify(from) !== JSON.stringify(to))
          console.log(
            `resumed from a ${describeLayout(from)} checkpoint: re-sharded for ${describeLayout(to)}`,
          );
        return { dir, state };
      }
      if (problem) console.warn(`warning: skipping damaged checkpoint ${dir}: ${problem.split("\n")[0]}`);
    }
    throw new CheckpointError(
      candidates.length
        ? `--resume: no valid checkpoint in ${this.save_dir} (all ${candidates.length} damaged, see above)`
        : `--resume: no checkpoint in ${this.save_dir}`,
    );
  }
}
