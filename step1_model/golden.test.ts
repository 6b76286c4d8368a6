// Parity with PyTorch on the shared golden fixture (skipped, visibly, when ../shared is absent).
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runGolden } from "./golden.ts";

const fixture = path.resolve(import.meta.dirname, "..", "..", "shared", "golden", "tiny");
const present = fs.existsSync(path.join(fixture, "golden.json"));
if (!present) console.warn(`SKIPPED golden parity: no fixture at ${fixture} (../shared is absent)`);

describe.skipIf(!present)("golden parity with PyTorch (../shared/golden/tiny)", () => {
  it("logits, loss, every gradient and the 30-step AdamW loss curve are within tolerance", () => {
    const r = runGolden(fixture);
    expect(r.logits_max_abs).toBeLessThanOrEqual(1e-4);
    expect(r.loss_abs).toBeLessThanOrEqual(1e-5);
    expect(r.grads_max_rel).toBeLessThanOrEqual(1e-3);
    expect(r.curve_max_abs).toBeLessThanOrEqual(1e-3);
  });
});
