import { describe, expect, it } from "vitest";
import { kernel, kernelCacheSize, kernelKey, type TypedGraph } from "./ort.ts";
import { checkOrtVersion, ortVersion, SUPPORTED_ORT_VERSIONS } from "./ort_binding.ts";

/** y = x + b, with b of shape bShape broadcast over x: [n]. */
const addGraph = (n: number, bShape: number[]) => (g: TypedGraph) => {
  const y = g.op("Add", [g.input("x", "float32", [n]), g.input("b", "float32", bShape)]);
  g.output(y, "float32", [n]);
};
const gemmGraph = (transB: number) => (g: TypedGraph) => {
  const y = g.op("Gemm", [g.input("a", "float32", [2, 2]), g.input("b", "float32", [2, 2])], { transB });
  g.output(y, "float32", [2, 2]);
};

describe("kernel cache", () => {
  it("keys a kernel by its whole graph", () => {
    expect(kernelKey(gemmGraph(1))).toBe(kernelKey(gemmGraph(1)));
    expect(kernelKey(gemmGraph(1))).not.toBe(kernelKey(gemmGraph(0))); // one attribute
    expect(kernelKey(addGraph(4, [4]))).not.toBe(kernelKey(addGraph(4, [1]))); // one input shape
  });

  it("compiles two graphs that differ only in a broadcast shape into two kernels", () => {
    const n0 = kernelCacheSize();
    const x = Float32Array.of(1, 2, 3, 4);
    const full = new Float32Array(4);
    const bcast = new Float32Array(4);
    kernel(addGraph(4, [4])).run(
      [
        { data: x, shape: [4] },
        { data: Float32Array.of(10, 20, 30, 40), shape: [4] },
      ],
      [{ data: full, shape: [4] }],
    );
    kernel(addGraph(4, [1])).run(
      [
        { data: x, shape: [4] },
        { data: Float32Array.of(10), shape: [1] },
      ],
      [{ data: bcast, shape: [4] }],
    );
    expect([...full]).toEqual([11, 22, 33, 44]);
    expect([...bcast]).toEqual([11, 12, 13, 14]);
    expect(kernelCacheSize()).toBe(n0 + 2);
    kernel(addGraph(4, [1])); // the same graph again: reused
    expect(kernelCacheSize()).toBe(n0 + 2);
  });
});

describe("onnxruntime adapter", () => {
  it("runs on the installed, supported version", () => {
    expect(SUPPORTED_ORT_VERSIONS).toContain(ortVersion());
    expect(() => checkOrtVersion(ortVersion())).not.toThrow();
  });

  it("refuses an unexpected version in one clear line", () => {
    let message = "";
    try {
      checkOrtVersion("1.99.0");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^onnxruntime-node 1\.99\.0 is installed, but .* supports only 1\.30\.0/);
    expect(message).toContain("install onnxruntime-node@1.30.0");
    expect(message).not.toContain("\n");
  });
});
