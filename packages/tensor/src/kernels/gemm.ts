// GEMM on two libraries: onnxruntime's MLAS (always there) and the system's OpenBLAS (when its addon is
// built). In "auto" mode (the default) each signature — shapes, transposes, thread count — runs on the
// one that measured faster on this host, each call timed after a pause as between a step's products (in
// a tie, the one most products before it chose); the choice is
// measured once and stored (gemm_store.ts), so every run and every rank on the host computes with the
// same kernels, bit for bit.
//   PICOTRON_GEMM=auto|ort|blas, or setGemmBackend(...) (the benches' --gemm flag).
import os from "node:os";
import { kernel, getNumThreads } from "./ort.ts";
import { ortVersion } from "./ort_binding.ts";
import { blasAvailable, blasDescription, blasGemm, blasOrReason } from "./blas.ts";
import {
  forgetChoices,
  storedChoices,
  storedOrMeasured,
  type GemmBackend,
  type GemmChoice,
} from "./gemm_store.ts";

export type GemmMode = "auto" | GemmBackend;
export type { GemmBackend, GemmChoice };

/** C[m, n] = op(A) op(B): op(A) is [m, k] (A is [k, m] when transA), op(B) is [k, n] (B is [n, k] when transB). */
export interface GemmSig {
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

/** An onnxruntime implementation of a product: writes op(A) op(B) into out. */
export type OrtGemm = (a: Float32Array, b: Float32Array, out: Float32Array, sig: GemmSig) => void;

/** The plain one: one ONNX Gemm node (transposes are flags, not copies). */
export const plainOrtGemm: OrtGemm = (a, b, out, { m, k, n, transA, transB }) => {
  const aShape = transA ? [k, m] : [m, k];
  const bShape = transB ? [n, k] : [k, n];
  kernel((g) => {
    const x = g.input("a", "float32", aShape);
    const y = g.input("b", "float32", bShape);
    g.output(g.op("Gemm", [x, y], { transA: +transA, transB: +transB }), "float32", [m, n]);
  }).run(
    [
      { data: a, shape: aShape },
      { data: b, shape: bShape },
    ],
    [{ data: out, shape: [m, n] }],
  );
};

const variants = new Map<string, OrtGemm>([["plain", plainOrtGemm]]);

/** Names another onnxruntime implementation of some products (e.g. the blocked wide products). */
export function registerOrtGemm(variant: string, impl: OrtGemm): void {
  variants.set(variant, impl);
}

function parseMode(v: string | undefined, from: string): GemmMode {
  if (v === undefined || v === "") return "auto";
  if (v === "auto" || v === "ort" || v === "blas") return v;
  throw new RangeError(`${from}: expected auto, ort or blas, got "${v}"`);
}

let mode: GemmMode = parseMode(process.env.PICOTRON_GEMM, "PICOTRON_GEMM");
let noticeShown = false;

/** Selects the GEMM backend: "auto" (measured per signature), "ort" (MLAS) or "blas" (OpenBLAS). */
export function setGemmBackend(m: string): void {
  const next = parseMode(m, "setGemmBackend");
  if (next === "blas" && !blasAvailable()) {
    throw new Error(`gemm backend "blas" requested, but ${blasOrReason().reason}`);
  }
  mode = next;
}
export function getGemmBackend(): GemmMode {
  return mode;
}

function sigKey({ m, k, n, transA, transB }: GemmSig, variant: string): string {
  const t = `${transA ? "T" : "N"}${transB ? "T" : "N"}`;
  return `${m}x${k}x${n}|${t}${variant === "plain" ? "" : `|${variant}`}`;
}

/** How choices are measured: choices stored by an earlier way of measuring are measured again. */
const METHOD = "cold-timed";

/** Identifies the host and everything a measurement depends on. */
function hostKey(): string {
  const cpu = os.cpus()[0]?.model ?? "cpu";
  const libs = `onnxruntime ${ortVersion()}|${blasDescription()}`;
  return `${os.hostname()}|${cpu}|${libs}|threads ${getNumThreads()}|${METHOD}`;
}

const idle = new Int32Array(new SharedArrayBuffer(4));

/**
 * Seconds per call of each: the best of alternating samples (other processes on the host only ever add
 * time). Warm, each sample repeats the call back to back (>= ~2 ms) while the library's threads are awake:
 * its GFLOP/s. Cold, each sample is one call after a 2 ms pause in which the library's idle threads went to
 * sleep, as they do between a training step's products: what a product costs there. On 2 threads the k/v
 * projection (1024x576x192) took 0.6 ms warm on MLAS against 0.74 on OpenBLAS, but between other work
 * 0.9-1.4 ms on MLAS against 0.55-0.75.
 */
function timeBoth(ort: () => void, blas: () => void, cold = false): [ortS: number, blasS: number] {
  ort(); // warm-up: compiles the ORT session, lets OpenBLAS allocate its buffers
  blas();
  let t = performance.now();
  ort();
  const first = (performance.now() - t) / 1e3;
  const reps = cold ? 1 : Math.max(1, Math.min(200, Math.ceil(2e-3 / Math.max(first, 1e-6))));
  const rounds = first > 0.05 ? 3 : cold ? 9 : 7;
  const samples: [number[], number[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    [ort, blas].forEach((fn, i) => {
      if (cold) Atomics.wait(idle, 0, 0, 2); // sleeps 2 ms
      t = performance.now();
      for (let j = 0; j < reps; j++) fn();
      samples[i]!.push((performance.now() - t) / 1e3 / reps);
    });
  }
  return [Math.min(...samples[0]), Math.min(...samples[1])];
}

/** The signatures this process has run, with their backend (for the run's header and the bench). */
const used = new Map<string, GemmChoice>();

/**
 * Within this margin the two libraries are tied: one measurement in a VM varies about as much (on 2
 * threads, one shape measured MLAS 291 against OpenBLAS 268 GFLOP/s when it was chosen, 343 against 386
 * when measured again in the same run).
 */
const TIE = 0.1;

/**
 * The faster library for a product, except in a tie: that goes to the library most of the products chosen
 * before it run on. A product on the other library wakes that library's sleeping threads and finds its
 * caches cold: on the 2-thread bench step, one tied shape on MLAS among 14 on OpenBLAS measured 3% slower,
 * round after round, than all 15 on OpenBLAS.
 */
export function chooseBackend(ortS: number, blasS: number, before: readonly GemmBackend[]): GemmBackend {
  const faster: GemmBackend = blasS < ortS ? "blas" : "ort";
  if (Math.max(ortS, blasS) > Math.min(ortS, blasS) * (1 + TIE)) return faster;
  return majority(before) ?? faster;
}

/** The library most of these products run on (null when none or as many on each). */
function majority(before: readonly GemmBackend[]): GemmBackend | null {
  const onBlas = before.filter((b) => b === "blas").length;
  const onOrt = before.length - onBlas;
  return onBlas === onOrt ? null : onBlas > onOrt ? "blas" : "ort";
}

/**
 * Measures a product on both libraries and chooses. A choice against the majority (or the first choice,
 * which makes one) holds only if it holds on the median of three measurements: a single one taken at a
 * noisy moment would be stored for good (on 2 threads, one shape measured MLAS >10% faster when chosen,
 * then 70 against 250 GFLOP/s for the rest of the run).
 */
export function measureChoice(
  measure: () => [ortS: number, blasS: number],
  before: readonly GemmBackend[],
): { backend: GemmBackend; ortS: number; blasS: number } {
  const runs = [measure()];
  const expected = majority(before);
  if (expected === null || chooseBackend(...runs[0]!, before) !== expected) runs.push(measure(), measure());
  const mid = (i: 0 | 1) => runs.map((r) => r[i]).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
  const [ortS, blasS] = [mid(0), mid(1)];
  return { backend: chooseBackend(ortS, blasS, before), ortS, blasS };
}

/**
 * The backend for this product: forced by the mode, or in auto mode the stored choice for this host, or
 * measured now on these very arrays (out is overwritten, so the caller runs the product afterwards).
 */
export function gemmBackendFor(
  sig: GemmSig,
  variant: string,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
): GemmBackend {
  if (mode !== "auto") return mode;
  if (!blasAvailable()) {
    if (!noticeShown) console.warn(`notice: GEMMs run on onnxruntime's MLAS only: ${blasOrReason().reason}`);
    noticeShown = true;
    return "ort";
  }
  const key = sigKey(sig, variant);
  let choice = used.get(key);
  if (!choice) {
    choice = storedOrMeasured(hostKey(), key, () => {
      const impl = variants.get(variant)!;
      const before = [...used.values()].map((c) => c.backend);
      const { backend, ortS, blasS } = measureChoice(
        () =>
          timeBoth(
            () => impl(a, b, out, sig),
            () => blasGemm(a, b, out, [sig.m, sig.k, sig.n], sig.transA, sig.transB),
            true,
          ),
        before,
      );
      const gflops = (s: number) => +((2 * sig.m * sig.k * sig.n) / s / 1e9).toPrecision(3);
      return { backend, ort_gflops: gflops(ortS), blas_gflops: gflops(blasS) };
    });
    used.set(key, choice);
  }
  return choice.backend;
}

/** out = op(A) op(B) on the backend chosen for the signature (`variant`: which ORT implementation). */
export function gemmInto(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  sig: GemmSig,
  variant = "plain",
): void {
  const impl = variants.get(variant);
  if (!impl) throw new Error(`gemm: unknown onnxruntime implementation "${variant}"`);
  if (gemmBackendFor(sig, variant, a, b, out) === "blas") {
    blasGemm(a, b, out, [sig.m, sig.k, sig.n], sig.transA, sig.transB);
  } else impl(a, b, out, sig);
}

/**
 * Both backends' GFLOP/s on one signature (a key of gemmChoices(), e.g. "1024x576x49152|NT"), measured
 * now on arbitrary data, alternating; blas is null without the addon.
 */
export function measureGemmShape(key: string): { ort_gflops: number; blas_gflops: number | null } {
  const match = /^(\d+)x(\d+)x(\d+)\|([NT])([NT])(?:\|(.+))?$/.exec(key);
  if (!match) throw new RangeError(`measureGemmShape: "${key}" is not a signature like 64x32x16|NT`);
  const [m, k, n] = [1, 2, 3].map((i) => Number(match[i]));
  const sig = { m: m!, k: k!, n: n!, transA: match[4] === "T", transB: match[5] === "T" };
  const impl = variants.get(match[6] ?? "plain");
  if (!impl) throw new RangeError(`measureGemmShape: unknown variant in "${key}"`);
  const a = Float32Array.from({ length: sig.m * sig.k }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const b = Float32Array.from({ length: sig.k * sig.n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const out = new Float32Array(sig.m * sig.n);
  const ort = () => impl(a, b, out, sig);
  const flops = 2 * sig.m * sig.k * sig.n;
  const gflops = (s: number) => +(flops / s / 1e9).toPrecision(3);
  if (!blasAvailable()) return { ort_gflops: gflops(timeBoth(ort, ort)[0]), blas_gflops: null };
  const [ortS, blasS] = timeBoth(ort, () =>
    blasGemm(a, b, out, [sig.m, sig.k, sig.n], sig.transA, sig.transB),
  );
  return { ort_gflops: gflops(ortS), blas_gflops: gflops(blasS) };
}

/**
 * Measures every shape again from its next product on: forgets this host's stored choices (for the
 * current thread count) and this process's. Results change with the choices, so only a bench calls this.
 */
export function remeasureGemmChoices(): void {
  forgetChoices(hostKey());
  used.clear();
}

/** The choices this process has used: signature -> backend and the GFLOP/s each measured on this host. */
export function gemmChoices(): Map<string, GemmChoice> {
  return new Map(used);
}

/**
 * One line for a run's header: which GEMM library runs the matrix products, e.g.
 * "gemm auto (per shape, measured once per host): OpenBLAS 0.3.21 (SkylakeX) on 5 shapes, MLAS (onnxruntime 1.30.0) on 2; 1 thread".
 * Choices are made on each shape's first product: called before the first step, it counts the stored ones.
 */
export function gemmBackendSummary(): string {
  const mlas = `MLAS (onnxruntime ${ortVersion()})`;
  const threads = `${getNumThreads()} thread${getNumThreads() === 1 ? "" : "s"}`;
  if (mode === "ort") return `gemm ort: ${mlas}; ${threads}`;
  if (mode === "blas") return `gemm blas: ${blasDescription()}; ${threads}`;
  if (!blasAvailable()) return `gemm auto: ${mlas} only (${blasOrReason().reason}); ${threads}`;
  const choices = used.size > 0 ? [...used.values()] : Object.values(storedChoices(hostKey()));
  const nBlas = choices.filter((c) => c.backend === "blas").length;
  const when = used.size > 0 ? "" : " stored";
  return (
    `gemm auto (per shape, measured once per host): ${blasDescription()} on ${nBlas}${when} shapes, ` +
    `${mlas} on ${choices.length - nBlas}; ${threads}`
  );
}
