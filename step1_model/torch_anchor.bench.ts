// Bench tooling (named *.bench.ts, like the bench itself, so the step diffs leave it out).
// The bench's PyTorch side (../shared/anchors/torch_llama.py, run by /usr/bin/python3 when torch is
// installed), on OpenBLAS's fastest kernels for this CPU: an inherited OPENBLAS_CORETYPE (e.g. Haswell, the
// AVX2 kernels) would hold PyTorch back on an AVX-512 CPU, and OPENBLAS_L2_SIZE would mistune its blocking.
// Both are removed, once a GEMM in that environment has matched a float64 reference. OpenBLAS's own pick of
// kernels is not always its fastest either (AMD Zen 4, family 25: it picks Cooperlake, AVX-512 kernels that
// this core runs as two 256-bit halves; its Haswell kernels ran the bench's products 3-5% faster), so each
// core the CPU can run is measured on the bench's products and the fastest is set for both sides. With 2
// or more threads, idle threads that spin take the cores the others compute on: PyTorch's intra-op pool is
// OpenMP (libgomp), whose idle threads spin unless OMP_WAIT_POLICY=PASSIVE (on the bench step with 2
// threads: 1.09 s per step with it, 1.44-1.87 s without), and OpenBLAS's idle threads get the thread
// timeout ours runs with (OPENBLAS_THREAD_TIMEOUT, see @picotron/blas-napi: 1.53-1.64 s against 1.81-2.13 s).
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { blasThreadTimeout } from "@picotron/tensor";

const PYTHON = "/usr/bin/python3";
export const ANCHOR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "shared",
  "anchors",
  "torch_llama.py",
);
/** What OpenBLAS reads at load time that can keep it off its best kernels. */
export const OPENBLAS_OVERRIDES = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

export function torchAvailable(): boolean {
  if (!fs.existsSync(ANCHOR)) return false;
  return spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" }).status === 0;
}

// A [384, 512] x [512, 320] product in float32 against the same in float64 (relative max error), then
// GFLOP/s on the bench step's three kinds of product (x w^T, g w, g^T x) over a slice of its LM head
// ([1024 tokens, 576] and 8192 of the vocabulary's rows): the best of 5 of each, after one untimed.
const GEMM_CHECK = `
import json, time, torch
torch.manual_seed(0)
a, b = torch.randn(384, 512), torch.randn(512, 320)
ref = a.double() @ b.double()
err = ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()
x, w, g = torch.randn(1024, 576), torch.randn(8192, 576), torch.randn(1024, 8192)
o_xw, o_gw, o_gx = torch.empty(1024, 8192), torch.empty(1024, 576), torch.empty(8192, 576)
def best(f):
    f(); t = float("inf")
    for _ in range(5):
        s = time.perf_counter(); f(); t = min(t, time.perf_counter() - s)
    return t
secs = (best(lambda: torch.mm(x, w.t(), out=o_xw)) + best(lambda: torch.mm(g, w, out=o_gw))
        + best(lambda: torch.mm(g.t(), x, out=o_gx)))
print(json.dumps({"err": err, "gflops": 3 * 2 * 1024 * 576 * 8192 / secs / 1e9}))
`;
const GEMM_TOLERANCE = 1e-5; // float32 sums of 512 terms: about 1e-7 relative, far below a wrong kernel
// Another core replaces OpenBLAS's own pick only when it is at least this much faster (the measurement's
// spread on a busy host is a few percent).
const CORE_MARGIN = 1.02;

export interface TorchEnv {
  env: NodeJS.ProcessEnv;
  /** The OpenBLAS core PyTorch runs (OPENBLAS_VERBOSE=2 prints "Core: SkylakeX"). */
  core: string;
  /** The variables removed from PyTorch's environment (empty when none was set or the check failed). */
  removed: string[];
  /** The variables set in PyTorch's environment (OPENBLAS_CORETYPE when another core beat OpenBLAS's pick). */
  set: Record<string, string>;
  /** GFLOP/s of each core measured (that passed the check), "Cooperlake": 104. */
  cores: Record<string, number>;
  note: string;
}

interface CoreCheck {
  err: number;
  gflops: number;
  core: string;
}

function gemmCheck(env: NodeJS.ProcessEnv): CoreCheck {
  const r = spawnSync(PYTHON, ["-c", GEMM_CHECK], {
    env: { ...env, OPENBLAS_VERBOSE: "2" },
    encoding: "utf8",
  });
  const core = /Core:\s*(\S+)/.exec(r.stderr ?? "")?.[1] ?? "unknown";
  if (r.status !== 0) return { err: Infinity, gflops: 0, core };
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { err: number; gflops: number };
  return { ...out, core };
}

/** The first processor's fields in /proc/cpuinfo ("cpu family", "model", "flags"...); {} elsewhere. */
export function cpuinfo(): Record<string, string> {
  let text = "";
  try {
    text = fs.readFileSync("/proc/cpuinfo", "utf8").split("\n\n")[0]!;
  } catch {
    return {};
  }
  const field = (line: string) => [
    line.slice(0, line.indexOf(":")).trim(),
    line.slice(line.indexOf(":") + 1).trim(),
  ];
  return Object.fromEntries(
    text
      .split("\n")
      .filter((l) => l.includes(":"))
      .map(field),
  );
}

/**
 * The OpenBLAS cores (OPENBLAS_CORETYPE's names) this CPU can run that could be faster than OpenBLAS's own
 * pick, by the instructions their kernels need (from /proc/cpuinfo's flags; none elsewhere).
 */
function candidateCores(): string[] {
  const flags = new Set((cpuinfo().flags ?? "").split(" "));
  const cores: string[] = [];
  if (flags.has("avx2") && flags.has("fma")) cores.push("Haswell", "Zen");
  if (["avx512f", "avx512bw", "avx512vl"].every((f) => flags.has(f))) cores.push("SkylakeX");
  if (flags.has("avx512_bf16")) cores.push("Cooperlake");
  return cores;
}

/**
 * PyTorch's environment for `threads` threads: without OpenBLAS overrides when its GEMM checks out, and on
 * the fastest OpenBLAS core this CPU runs (each checked against float64 first).
 */
export function fairTorchEnv(threads: number): TorchEnv {
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    OPENBLAS_NUM_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
    OMP_WAIT_POLICY: "PASSIVE",
    OPENBLAS_THREAD_TIMEOUT: blasThreadTimeout(),
  };
  const inheritedVars = OPENBLAS_OVERRIDES.filter((v) => base[v] !== undefined);
  const clean = { ...base };
  for (const v of inheritedVars) delete clean[v];
  const own = gemmCheck(clean);
  const inherited = inheritedVars.map((v) => `${v}=${base[v]}`).join(" ");
  const idle = `; idle threads sleep (OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=${base.OPENBLAS_THREAD_TIMEOUT})`;
  if (own.err > GEMM_TOLERANCE) {
    const kept = gemmCheck(base);
    return {
      env: base,
      core: kept.core,
      removed: [],
      set: {},
      cores: {},
      note: `kept the environment as it is (${inherited || "no override"}): without it a GEMM did not match float64 (rel err ${own.err})${idle}`,
    };
  }
  // OpenBLAS's own pick and every other core the CPU runs, in turn, twice: each keeps its faster pass (the
  // host's speed drifts between processes); a core that fails the check in either pass, or crashes, or is
  // not the core OpenBLAS reports running, is left out
  const others = candidateCores().filter((c) => c.toLowerCase() !== own.core.toLowerCase());
  const measure = (core: string): CoreCheck | null => {
    const c = gemmCheck({ ...clean, OPENBLAS_CORETYPE: core });
    return c.err <= GEMM_TOLERANCE && c.core.toLowerCase() === core.toLowerCase() ? c : null;
  };
  const first = others.map(measure);
  const again = gemmCheck(clean);
  const ownBest = again.err <= GEMM_TOLERANCE && again.gflops > own.gflops ? again : own;
  const checks = [ownBest];
  others.forEach((core, i) => {
    const a = first[i];
    const b = a && measure(core);
    if (a && b) checks.push(b.gflops > a.gflops ? b : a);
  });
  const fastest = checks.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  const chosen = fastest.gflops >= ownBest.gflops * CORE_MARGIN ? fastest : ownBest;
  const set: Record<string, string> = chosen === ownBest ? {} : { OPENBLAS_CORETYPE: chosen.core };
  const cores = Object.fromEntries(checks.map((c) => [c.core, +c.gflops.toFixed(1)]));
  const measured = checks
    .map((c) => `${c.core} ${c.gflops.toFixed(0)}${c === ownBest ? " (OpenBLAS's pick)" : ""}`)
    .join(", ");
  const removedNote = inheritedVars.length ? `removed ${inherited}` : "no OpenBLAS override set";
  const note =
    `${removedNote}; GEMM check passed (rel err ${own.err.toExponential(1)}); ` +
    `cores on the bench's products, GFLOP/s: ${measured}` +
    (chosen === ownBest ? "" : `; set OPENBLAS_CORETYPE=${chosen.core} for both sides`);
  return {
    env: { ...clean, ...set },
    core: chosen.core,
    removed: inheritedVars,
    set,
    cores,
    note: note + idle,
  };
}

export interface TorchResult {
  step_s: number;
  tokens_per_s: number;
  impl: string;
}

/** One round of the anchor's bench (its median step over `steps` after a warm-up). */
export function torchRound(
  env: NodeJS.ProcessEnv,
  o: { threads: number; mbs: number; seq: number; steps: number },
): TorchResult {
  const args = ["bench", "--config", "bench", "--threads", String(o.threads), "--mbs", String(o.mbs)];
  args.push("--seq", String(o.seq), "--steps", String(o.steps));
  const out = execFileSync(PYTHON, [ANCHOR, ...args], { env, encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop()!) as TorchResult;
}

// Warm steps of the anchor's bench, each profiled by torch.profiler: for the median step, the self time
// (ms) per aten op, the optimizer's total, and the step. The model is the anchor's own (its module
// imported; the step is its bench loop's four lines), run with torchRound's threads and environment.
const PROFILE = `
import importlib.util, json, sys, time, torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity
spec = importlib.util.spec_from_file_location("torch_llama", sys.argv[1])
T = importlib.util.module_from_spec(spec); spec.loader.exec_module(T)
threads, mbs, seq, warmup = (int(x) for x in sys.argv[2:6])
torch.set_num_threads(threads)
c = dict(T.CONFIGS["bench"]); c["max_position_embeddings"] = seq
torch.manual_seed(0)
model = T.Llama(c); opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
ids = torch.randint(0, c["vocab_size"], (mbs, seq + 1))
def step():
    opt.zero_grad(set_to_none=True)
    lg = model(ids[:, :-1])
    F.cross_entropy(lg.reshape(-1, c["vocab_size"]), ids[:, 1:].reshape(-1)).backward()
    opt.step()
for _ in range(warmup): step()
runs = []
for _ in range(int(sys.argv[6])):
    with profile(activities=[ProfilerActivity.CPU]) as p:
        t = time.perf_counter(); step(); step_ms = (time.perf_counter() - t) * 1e3
    ev = p.key_averages()
    runs.append({"step_ms": step_ms, "self_ms": {e.key: e.self_cpu_time_total / 1e3 for e in ev},
                 "total_ms": {e.key: e.cpu_time_total / 1e3 for e in ev}})
print(json.dumps(sorted(runs, key=lambda r: r["step_ms"])[len(runs) // 2]))
`;

export interface TorchProfile {
  step_ms: number;
  /** Self time per aten op (ms): an op calling another is not charged for it. */
  self_ms: Record<string, number>;
  /** Total time per op, callees included (ms): "Optimizer.step#AdamW.step" is the whole update. */
  total_ms: Record<string, number>;
}

/** The anchor's median step of `steps` profiled ones, after `warmup` untimed steps. */
export function torchProfile(
  env: NodeJS.ProcessEnv,
  o: { threads: number; mbs: number; seq: number; warmup: number; steps: number },
): TorchProfile {
  const argv = [ANCHOR, o.threads, o.mbs, o.seq, o.warmup, o.steps].map(String);
  const out = execFileSync(PYTHON, ["-c", PROFILE, ...argv], { env, encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop()!) as TorchProfile;
}
