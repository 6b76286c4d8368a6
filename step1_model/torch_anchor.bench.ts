// Bench tooling (named *.bench.ts, like the bench itself, so the step diffs leave it out).
// The bench's PyTorch side (../shared/anchors/torch_llama.py, run by /usr/bin/python3 when torch is
// installed), on OpenBLAS's best kernels for this CPU: an inherited OPENBLAS_CORETYPE (e.g. Haswell, the
// AVX2 kernels) would hold PyTorch back on an AVX-512 CPU, and OPENBLAS_L2_SIZE would mistune its blocking.
// Both are removed, once a GEMM in that environment has matched a float64 reference. With 2 or more
// threads, idle threads that spin take the cores the others compute on: PyTorch's intra-op pool is OpenMP
// (libgomp), whose idle threads spin unless OMP_WAIT_POLICY=PASSIVE (on the bench step with 2 threads:
// 1.09 s per step with it, 1.44-1.87 s without), and OpenBLAS's idle threads get the thread timeout ours
// runs with (OPENBLAS_THREAD_TIMEOUT, see @picotron/blas-napi: 1.53-1.64 s against 1.81-2.13 s).
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

// A [384, 512] x [512, 320] product in float32 against the same in float64: relative max error.
const GEMM_CHECK = `
import json, torch
torch.manual_seed(0)
a, b = torch.randn(384, 512), torch.randn(512, 320)
ref = a.double() @ b.double()
print(json.dumps({"err": ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()}))
`;
const GEMM_TOLERANCE = 1e-5; // float32 sums of 512 terms: about 1e-7 relative, far below a wrong kernel

export interface TorchEnv {
  env: NodeJS.ProcessEnv;
  /** The OpenBLAS core PyTorch runs (OPENBLAS_VERBOSE=2 prints "Core: SkylakeX"). */
  core: string;
  /** The variables removed from PyTorch's environment (empty when none was set or the check failed). */
  removed: string[];
  note: string;
}

function gemmCheck(env: NodeJS.ProcessEnv): { err: number; core: string } {
  const r = spawnSync(PYTHON, ["-c", GEMM_CHECK], {
    env: { ...env, OPENBLAS_VERBOSE: "2" },
    encoding: "utf8",
  });
  const core = /Core:\s*(\S+)/.exec(r.stderr ?? "")?.[1] ?? "unknown";
  if (r.status !== 0) return { err: Infinity, core };
  return { err: (JSON.parse(r.stdout.trim().split("\n").pop()!) as { err: number }).err, core };
}

/** PyTorch's environment for `threads` threads: without OpenBLAS overrides when its GEMM checks out. */
export function fairTorchEnv(threads: number): TorchEnv {
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    OPENBLAS_NUM_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
    OMP_WAIT_POLICY: "PASSIVE",
    OPENBLAS_THREAD_TIMEOUT: blasThreadTimeout(),
  };
  const set = OPENBLAS_OVERRIDES.filter((v) => base[v] !== undefined);
  const clean = { ...base };
  for (const v of set) delete clean[v];
  const check = gemmCheck(clean);
  const inherited = set.map((v) => `${v}=${base[v]}`).join(" ");
  const idle = `; idle threads sleep (OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=${base.OPENBLAS_THREAD_TIMEOUT})`;
  if (check.err <= GEMM_TOLERANCE) {
    const note = set.length
      ? `removed ${inherited}; GEMM check passed (rel err ${check.err.toExponential(1)})`
      : `no OpenBLAS override set; GEMM check passed (rel err ${check.err.toExponential(1)})`;
    return { env: clean, core: check.core, removed: set, note: note + idle };
  }
  const kept = gemmCheck(base);
  return {
    env: base,
    core: kept.core,
    removed: [],
    note: `kept the environment as it is (${inherited || "no override"}): without it a GEMM did not match float64 (rel err ${check.err})${idle}`,
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
