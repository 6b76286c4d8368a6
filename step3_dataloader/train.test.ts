// End-to-end tests of the training loop, run as a user runs it: `node train.ts` with flags, in a scratch folder.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { plainEnv } from "@picotron/mpi-napi/testing";
import { loadSafetensors, saveSafetensors } from "@picotron/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "./model.ts";

const TRAIN = path.join(import.meta.dirname, "train.ts");
const SHAKESPEARE = path.resolve(import.meta.dirname, "../../shared/data/tinyshakespeare.txt");
const hasShakespeare = fs.existsSync(SHAKESPEARE);
if (!hasShakespeare) console.warn(`SKIPPED the tinyshakespeare run: ${SHAKESPEARE} is absent (../shared)`);

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "train-"));
  fs.writeFileSync(path.join(dir, "stories.txt"), "Once upon a time there was a little cat. ".repeat(400));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// a tiny model on the small local text: a step takes milliseconds
const TINY = [
  "--dataset_name=stories.txt",
  "--tokenizer_name=bytes",
  "--hidden_size=64",
  "--intermediate_size=128",
  "--num_hidden_layers=2",
  "--num_attention_heads=4",
  "--num_key_value_heads=2",
  "--seq_len=32",
  "--micro_batch_size=4",
  "--gradient_accumulation_steps=2",
  "--max_tokens=3072", // 12 steps of 256 tokens
  "--lr_scheduler=constant",
  "--omp_num_threads=1",
];

function env(): NodeJS.ProcessEnv {
  // a clean environment: not inside the caller's MPI job; INIT_CWD (set by pnpm for `pnpm train`) makes
  // relative paths resolve against the scratch folder
  const e = plainEnv();
  return { ...e, INIT_CWD: dir, PICOTRON_CACHE_DIR: path.join(dir, "cache") };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs train.ts to its end. Asynchronous (not spawnSync): a long run must not block the test worker. */
function train(flags: string[]): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", TRAIN, ...flags], {
    cwd: import.meta.dirname,
    env: env(),
  });
  const run: Run = { status: null, stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => (run.stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (run.stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      run.status = code;
      resolve(run);
    }),
  );
}

function losses(runName: string): number[] {
  const file = path.join(dir, "runs", runName, "metrics.jsonl");
  return fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { step: number; loss: number })
    .map((m, i) => {
      expect(m.step).toBe(i + 1);
      return m.loss;
    });
}

describe("step 3 training loop", () => {
  it("logs the tutorial's line every step, and the loss falls", async () => {
    const r = await train([...TINY, "--run_name=plain"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /Step: 12, Loss: \d+\.\d{4}, Global batch size \(with seq_len\): 256\.00, Tokens\/s: .*Tokens: 3\.07K\/3\.07K, Memory \(RSS\): .*GB, MFU: /,
    );
    const curve = losses("plain");
    expect(curve).toHaveLength(12);
    expect(curve.at(-1)!).toBeLessThan(curve[0]! - 1);
  });

  it("Ctrl-C saves and stops, and resuming gives exactly the uninterrupted curve", async () => {
    const saveDir = path.join(dir, "ckpt-resume");
    // 60 steps: however late this test reads the output, the Ctrl-C lands well before the end
    const LONG = "--max_tokens=15360";
    expect((await train([...TINY, LONG, "--run_name=plain60"])).status).toBe(0);
    const full = losses("plain60");
    // first half: the package's own `train` script in a process group of its own, as a terminal runs it;
    // once it has logged a step, Ctrl-C (SIGINT to the whole group): it finishes that step, saves and exits
    const script = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "package.json"), "utf8")).scripts
      .train as string;
    const flags = [...TINY, LONG, "--run_name=resumed", `--save_dir=${saveDir}`].join(" ");
    const child = spawn("sh", ["-c", `${script} ${flags}`], {
      cwd: import.meta.dirname,
      env: env(),
      detached: true,
    });
    let out = "";
    let signalled = false;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!signalled && /Step: 2,/.test(out)) {
        signalled = true;
        process.kill(-child.pid!, "SIGINT");
      }
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    // "close": the training process (which holds the pipes) has exited; the shell itself dies of the SIGINT
    await new Promise((resolve) => child.on("close", resolve));
    expect(err).toMatch(/interrupted \(Ctrl-C\): finishing the current step, then saving/);
    const stoppedAt = Number(/stopped at step (\d+)/.exec(out)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(2);
    expect(stoppedAt).toBeLessThan(60);
    // second half
    const r = await train([...TINY, LONG, "--run_name=resumed", `--save_dir=${saveDir}`, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`resumed from .*step_0*${stoppedAt} at step ${stoppedAt}`));
    expect(losses("resumed")).toEqual(full);
  });

  it("refuses to resume from a checkpoint of another configuration, or a truncated one", async () => {
    const saveDir = path.join(dir, "ckpt-foreign");
    expect((await train([...TINY, "--max_tokens=512", `--save_dir=${saveDir}`])).status).toBe(0);
    const other = await train([
      ...TINY,
      "--max_tokens=512",
      "--num_hidden_layers=3",
      `--save_dir=${saveDir}`,
      "--resume",
    ]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/was saved by a different run configuration/);
    const [step] = fs.readdirSync(saveDir).filter((d) => d.startsWith("step_"));
    const model = path.join(saveDir, step!, "model_tp0_pp0.safetensors");
    fs.truncateSync(model, Math.floor(fs.statSync(model).size / 2));
    const truncated = await train([...TINY, "--max_tokens=512", `--save_dir=${saveDir}`, "--resume"]);
    expect(truncated.status).not.toBe(0);
    expect(truncated.stderr).toContain("model_tp0_pp0.safetensors");
  });

  it("bad flags and inputs fail before any work, with a clear message", async () => {
    const cases: [string[], RegExp][] = [
      [["--dataset_name=missing.txt"], /missing\.txt/],
      [["--seq_len=0"], /--seq_len must be a positive integer/],
      [["--resume"], /--resume needs --save_dir/],
      [["--max_tokens=100000000"], /Not enough tokens/],
      [["--num_attention_heads=3"], /not divisible/],
      [["--no_such_flag=1"], /Unknown argument/],
      // a flag without its value is an error, never its default
      [["--seq_len"], /--seq_len needs a value/],
      [["--max_tokens=100"], /--max_tokens 100 is less than one step's 256 tokens/],
      [["--lr_scheduler=cosine", "--min_lr=0.1"], /--min_lr 0\.1 is above --learning_rate 0\.001/],
      [["--seed=1.5"], /--seed must be an integer, got 1\.5/],
      [["--seed=-7"], /--seed must be >= 0, got -7/],
      // output folders are checked before the first step, not when the first save comes
      [
        ["--save_dir=stories.txt", "--save_frequency=10"],
        /--save_dir .*stories\.txt: is a file, not a folder/,
      ],
      [["--runs_dir=stories.txt/runs"], /--runs_dir .*stories\.txt\/runs: not writable/],
      [["--hidden_size=1000000"], /the model needs [\d.]+ GB .*machine.s [\d.]+ GB: lower --hidden_size/],
    ];
    // three at a time: each case is mostly a process starting up
    const runs: Run[] = [];
    for (let i = 0; i < cases.length; i += 3)
      runs.push(...(await Promise.all(cases.slice(i, i + 3).map(([flags]) => train([...TINY, ...flags])))));
    for (const [i, [flags, message]] of cases.entries()) {
      const r = runs[i]!;
      expect(r.status, flags.join(" ")).toBe(1);
      expect(r.stderr + r.stdout).toMatch(message);
      expect(r.stdout).not.toMatch(/Step: 1,/);
      // one line (after any progress bar), no stack trace: the message is the user's, the trace is noise
      expect(r.stderr.trim().split("\n").at(-1), r.stderr).toMatch(/^error: /);
      expect(r.stderr, r.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it("a read-only --save_dir or --runs_dir is refused before the first step (root: a read-only tmpfs)", async (ctx) => {
    const ro = path.join(dir, "read-only");
    fs.mkdirSync(ro, { recursive: true });
    if (process.getuid?.() === 0) {
      const m = spawnSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]);
      if (m.status !== 0) ctx.skip();
    } else fs.chmodSync(ro, 0o555);
    try {
      for (const flag of ["--save_dir", "--runs_dir"]) {
        const r = await train([...TINY, `${flag}=${path.join(ro, "out")}`]);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(`${flag} .*read-only/out: not writable \\((read-only file system|permission denied)\\)`),
        );
        expect(r.stdout).not.toMatch(/Step: 1,/);
      }
    } finally {
      if (process.getuid?.() === 0) spawnSync("umount", [ro]);
      else fs.chmodSync(ro, 0o755);
    }
  });

  it("a diverging run stops before its optimizer step and any save; the checkpoints it kept are sane", async () => {
    const saveDir = path.join(dir, "ckpt-diverge");
    const r = await train([
      ...TINY,
      "--learning_rate=1e3",
      "--max_grad_norm=0",
      `--save_dir=${saveDir}`,
      "--save_frequency=1",
      "--run_name=diverge",
    ]);
    expect(r.status).toBe(1);
    const stopped = Number(/step (\d+): .*the run diverged/.exec(r.stderr)?.[1]);
    expect(stopped, r.stderr).toBeGreaterThan(1);
    expect(r.stderr).toMatch(/try a lower --learning_rate/);
    // every checkpoint kept is of a step before the divergence, whose loss was still sane
    const saved = fs
      .readdirSync(saveDir)
      .filter((d) => d.startsWith("step_"))
      .map((d) => Number(d.slice(5)));
    expect(Math.max(...saved)).toBe(stopped - 1);
    const first = losses("diverge")[0]!;
    for (const l of losses("diverge")) expect(l).toBeLessThan(100 * first);
  });

  it("SIGKILL, then --resume: the metrics go on after the checkpoint, no step twice; resuming a finished run says so", async () => {
    const saveDir = path.join(dir, "ckpt-killed");
    const flags = [...TINY, "--run_name=killed", `--save_dir=${saveDir}`, "--save_frequency=3"];
    const child = spawn(process.execPath, ["--import", "tsx", TRAIN, ...flags], {
      cwd: import.meta.dirname,
      env: env(),
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (/Step: 7,/.test(out)) child.kill("SIGKILL"); // after step 6's checkpoint, before step 9's
    });
    await new Promise((resolve) => child.on("close", resolve));
    const r = await train([...flags, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(losses("killed")).toEqual(losses("plain")); // steps 1..12, each once, as the uninterrupted run
    const again = await train([...flags, "--resume"]);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/resumed from .*step_000012 at step 12: the run is already complete/);
    expect(again.stdout).not.toMatch(/Step: /);
  });

  it.skipIf(!hasShakespeare)(
    "learns ../shared/data/tinyshakespeare.txt with the byte tokenizer: loss below 2.5",
    async () => {
      const r = await train([
        `--dataset_name=${SHAKESPEARE}`,
        "--tokenizer_name=bytes",
        "--hidden_size=128",
        "--intermediate_size=384",
        "--num_hidden_layers=2",
        "--num_attention_heads=4",
        "--num_key_value_heads=2",
        "--seq_len=64",
        "--micro_batch_size=16",
        "--max_tokens=131072", // 128 steps of 1024 tokens
        "--learning_rate=3e-3",
        "--warmup_steps=10",
        "--min_lr=3e-4",
        "--run_name=shakespeare",
      ]);
      expect(r.status, r.stderr).toBe(0);
      const curve = losses("shakespeare");
      const last = curve.slice(-5).reduce((a, b) => a + b, 0) / 5;
      expect(last).toBeLessThan(2.5);
    },
  );
});

describe("--init_from_pretrained", () => {
  it("loads a local Hugging Face Llama (HF names, tied lm_head) into the tutorial's model", async () => {
    // a tiny "pretrained" model: our own init, saved under Hugging Face's names without lm_head (tied)
    const config = {
      vocab_size: 320,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      max_position_embeddings: 32,
    };
    const hfDir = path.join(dir, "hf-llama");
    fs.mkdirSync(hfDir, { recursive: true });
    fs.writeFileSync(path.join(hfDir, "config.json"), JSON.stringify(config));
    const source = new Llama(config).initWeights(7).stateDict();
    const hfName = (name: string) =>
      name === "embedding.weight"
        ? "model.embed_tokens.weight"
        : name === "final_norm.weight"
          ? "model.norm.weight"
          : name
              .replace(/^decoder_layers\./, "model.layers.")
              .replace(".attention.out_proj.", ".self_attn.o_proj.")
              .replace(".attention.", ".self_attn.");
    const hf = Object.fromEntries(
      Object.entries(source)
        .filter(([name]) => name !== "final_proj.weight")
        .map(([name, t]) => [hfName(name), t]),
    );
    saveSafetensors(path.join(hfDir, "model.safetensors"), hf);

    // learning rate 0: the checkpoint written after one step holds exactly the loaded weights
    const saveDir = path.join(dir, "ckpt-pretrained");
    const r = await train([
      ...TINY,
      "--init_from_pretrained",
      `--model_name=${hfDir}`,
      "--learning_rate=0",
      "--weight_decay=0",
      "--max_tokens=256",
      `--save_dir=${saveDir}`,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const saved = loadSafetensors(path.join(saveDir, "step_000001", "model_tp0_pp0.safetensors")).tensors;
    expect(Object.keys(saved).sort()).toEqual(Object.keys(source).sort());
    for (const [name, t] of Object.entries(source)) {
      // the untied final projection reuses the embedding, as HF's tie_word_embeddings
      const want = name === "final_proj.weight" ? source["embedding.weight"]! : t;
      expect(Array.from(saved[name]!.values()), name).toEqual(Array.from(want.values()));
    }
  });

  it("refuses a directory without config.json before any work", async () => {
    const r = await train([...TINY, "--init_from_pretrained", `--model_name=${dir}`]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--init_from_pretrained needs --model_name to be a local HF Llama directory/);
  });
});
