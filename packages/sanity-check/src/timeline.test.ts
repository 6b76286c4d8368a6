import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createCanvas, loadImage } from "@napi-rs/canvas";
import { afterAll, describe, expect, it } from "vitest";
import { layoutColor } from "./charts.ts";
import {
  bubbleFraction,
  readTrace,
  renderTimelinePng,
  stepSpans,
  tracedSteps,
  type TraceSpan,
} from "./timeline.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sanity-timeline-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A span as a run's trace writes it: times in µs. */
function span(
  pid: number,
  cat: string,
  name: string,
  startMs: number,
  endMs: number,
  step: number,
  microbatch?: number,
) {
  const args = microbatch === undefined ? { step } : { step, microbatch };
  return { name, cat, ph: "X", ts: startMs * 1e3, dur: (endMs - startMs) * 1e3, pid, tid: 0, args };
}

// Two stages, two micro-batches, all-forward-all-backward, 10 ms per forward or backward (step 2 offset by 1 s)
function afabStep(step: number, t0: number) {
  return [
    span(0, "forward", "forward", t0, t0 + 10, step, 0),
    span(0, "p2p", "send_forward", t0 + 10, t0 + 11, step),
    span(0, "forward", "forward", t0 + 11, t0 + 21, step, 1),
    span(0, "p2p", "recv_backward", t0 + 21, t0 + 41, step),
    span(0, "backward", "backward", t0 + 41, t0 + 51, step, 0),
    span(0, "backward", "backward", t0 + 51, t0 + 61, step, 1),
    span(1, "p2p", "recv_forward", t0, t0 + 11, step),
    span(1, "forward", "forward", t0 + 11, t0 + 21, step, 0),
    span(1, "forward", "forward", t0 + 21, t0 + 31, step, 1),
    span(1, "backward", "backward", t0 + 31, t0 + 41, step, 0),
    span(1, "backward", "backward", t0 + 41, t0 + 51, step, 1),
    span(0, "all-reduce", "all_reduce_loss", t0 + 61, t0 + 63, step),
    span(1, "all-reduce", "all_reduce_loss", t0 + 51, t0 + 63, step),
    span(0, "optimizer", "optimizer", t0 + 63, t0 + 70, step),
    span(1, "optimizer", "optimizer", t0 + 63, t0 + 70, step),
  ];
}
const traceFile = path.join(dir, "trace.json");
fs.writeFileSync(
  traceFile,
  JSON.stringify({
    traceEvents: [
      ...afabStep(1, 0),
      ...afabStep(2, 1000),
      { name: "process_name", ph: "M", pid: 0, args: { name: "rank 0 (dp 0, pp 0, tp 0)" } },
      { name: "process_name", ph: "M", pid: 1, args: { name: "rank 1 (dp 0, pp 1, tp 0)" } },
    ],
  }),
);

/** Pixels of one colour (within a small margin for anti-aliasing). */
async function countColor(file: string, hex: string): Promise<number> {
  const image = await loadImage(file);
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const { data } = ctx.getImageData(0, 0, image.width, image.height);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i]! - r!) + Math.abs(data[i + 1]! - g!) + Math.abs(data[i + 2]! - b!) < 24) n++;
  }
  return n;
}

describe("the timeline of a traced run", () => {
  it("reads the tracks and picks one step, its times in ms from the step's start", () => {
    const trace = readTrace(traceFile);
    expect(trace.tracks.get(1)).toBe("rank 1 (dp 0, pp 1, tp 0)");
    expect(tracedSteps(trace)).toEqual([1, 2]);
    const spans = stepSpans(trace, 2);
    expect(spans).toHaveLength(15);
    expect(spans.find((s) => s.pid === 1 && s.cat === "forward")).toMatchObject({ ts: 11, dur: 10 });
    expect(() => stepSpans(trace, 3)).toThrow(/no spans of step 3 \(steps: 1, 2\)/);
  });

  it("measures the bubble: the ranks' idle share between the first forward and the last backward", () => {
    const spans = stepSpans(readTrace(traceFile), 1);
    // window [0, 61] ms on 2 ranks; each computes 4 x 10 ms
    expect(bubbleFraction(spans)).toBeCloseTo(1 - 80 / (2 * 61), 12);
    const noCompute: TraceSpan[] = spans.filter((s) => s.cat === "p2p");
    expect(() => bubbleFraction(noCompute)).toThrow(/no forward or backward/);
  });

  it("draws one row per rank with each kind of span in its colour", async () => {
    const file = path.join(dir, "out", "timeline.png");
    const { step, bubble } = renderTimelinePng(readTrace(traceFile), file, { title: "AFAB" });
    expect(step).toBe(2); // the last traced step by default
    expect(bubble).toBeCloseTo(1 - 80 / 122, 12);
    const image = await loadImage(file);
    expect([image.width, image.height]).toEqual([1600, 380]);
    // forward, backward, send/recv, all-reduce and optimizer boxes are all there
    for (const i of [0, 1, 9, 3, 4]) expect(await countColor(file, layoutColor(i))).toBeGreaterThan(500);
  });

  it("runs as a command, and refuses a file that is not a trace", () => {
    const script = path.join(import.meta.dirname, "timeline.ts");
    const png = path.join(dir, "cli.png");
    const ok = spawnSync(process.execPath, ["--import", "tsx", script, traceFile, png, "--step", "1"], {
      encoding: "utf8",
    });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/cli\.png: step 1, bubble 34\.4%/);
    expect(fs.existsSync(png)).toBe(true);
    const notTrace = path.join(dir, "metrics.json");
    fs.writeFileSync(notTrace, JSON.stringify({ loss: 1 }));
    const bad = spawnSync(process.execPath, ["--import", "tsx", script, notTrace, png], { encoding: "utf8" });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/not a Chrome trace/);
  });
});
