// GEMM on two libraries: onnxruntime's MLAS (always there) and the system's OpenBLAS (when its addon is
// built). In "auto" mode (the default) each signature — shapes, transposes, thread count — runs on the
// one that measured faster on this host, each call timed after a pause as between a step's products (in
// a tie, the one faster on the products measured so far); the choice is measured once and stored
// (gemm_store.ts), so every run and every rank on the host computes with the same kernels, bit for bit.
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

/** The signature and variant a key names ("1024x576x49152|NT", "1024x49152x576|NN|wide-dx"). */
function parseKey(key: string, from: string): { sig: GemmSig; variant: string } {
  const match = /^(\d+)x(\d+)x(\d+)\|([NT])([NT])(?:\|(.+))?$/.exec(key);
  if (!match) throw new RangeError(`${from}: "${key}" is not a signature like 64x32x16|NT`);
  const [m, k, n] = [1, 2, 3].map((i) => Number(match[i]));
  const sig = { m: m!, k: k!, n: n!, transA: match[4] === "T", transB: match[5] === "T" };
  return { sig, variant: match[6] ?? "plain" };
}

/** Seconds per call on each library, from a choice's GFLOP/s. */
function timing(key: string, c: GemmChoice): GemmTiming {
  const { m, k, n } = parseKey(key, "gemm").sig;
  return { ortS: (2 * m * k * n) / (c.ort_gflops * 1e9), blasS: (2 * m * k * n) / (c.blas_gflops * 1e9) };
}

/** How choices are measured: choices stored by an earlier way of measuring are measured again. */
const METHOD = "cold-timed, ties by time";

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

/** One product's seconds per call on each library. */
export interface GemmTiming {
  ortS: number;
  blasS: number;
}

/**
 * The library that runs these products faster as a whole (their seconds summed; null when none or equal).
 * The sum weighs each product by its time, so the LM head's products outweigh a dozen small ones.
 */
function home(timings: readonly GemmTiming[]): GemmBackend | null {
  const ort = timings.reduce((s, t) => s + t.ortS, 0);
  const blas = timings.reduce((s, t) => s + t.blasS, 0);
  return ort === blas ? null : blas < ort ? "blas" : "ort";
}

/**
 * The faster library for a product, except in a tie: that goes to the library faster on the products
 * measured before it and this one together. A product on the other library wakes that library's sleeping
 * threads and finds its caches cold: on the 2-thread bench step, one tied shape on MLAS among 14 on
 * OpenBLAS measured 3% slower, round after round, than all 15 on OpenBLAS. Ties once went to the library
 * most earlier products had chosen, counted, not timed: then the first, small product's coin flip decided
 * every tie after it (2 threads, Zen 4: MLAS by 165 to 164 GFLOP/s on the q projection, then MLAS for the
 * LM head too, 184 against OpenBLAS's 200; the step ran 3.6% slower than on OpenBLAS alone).
 */
export function chooseBackend(ortS: number, blasS: number, before: readonly GemmTiming[]): GemmBackend {
  const faster: GemmBackend = blasS < ortS ? "blas" : "ort";
  if (Math.max(ortS, blasS) > Math.min(ortS, blasS) * (1 + TIE)) return faster;
  return home([...before, { ortS, blasS }]) ?? faster;
}

/**
 * Measures a product on both libraries and chooses. A choice against the library faster on the products
 * before it (or the first choice, which makes one) holds only if it holds on the median of three
 * measurements: a single one taken at a noisy moment would be stored for good (on 2 threads, one shape
 * measured MLAS >10% faster when chosen, then 70 against 250 GFLOP/s for the rest of the run).
 */
export function measureChoice(
  measure: () => [ortS: number, blasS: number],
  before: readonly GemmTiming[],
): { backend: GemmBackend; ortS: number; blasS: number } {
  const runs = [measure()];
  const expected = home(before);
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
      const before = [...used].map(([k, c]) => timing(k, c));
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
  const { sig, variant } = parseKey(key, "measureGemmShape");
  const impl = variants.get(variant);
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
