import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { plainEnv } from "@picotron/mpi-napi/testing";

function worker(mode: string, saveDir: string) {
  const env = plainEnv();
  return spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(import.meta.dirname, "checkpoint.worker.ts"), mode, saveDir],
    { env, encoding: "utf8", timeout: 60_000 },
  );
}

describe("checkpoints", () => {
  it("a process killed in the middle of a save leaves the previous checkpoint whole", () => {
    const saveDir = fs.mkdtempSync(path.join(os.tmpdir(), "step3-ckpt-"));
    try {
      const crash = worker("crash", saveDir);
      expect(crash.signal, crash.stderr).toBe("SIGKILL");
      // the half-written step 2 sits in a hidden folder, never under its final name
      expect(fs.readdirSync(saveDir).sort()).toEqual([".tmp-step_2", "step_000001"]);
      const check = worker("check", saveDir);
      expect(check.status, check.stderr).toBe(0);
      const report = JSON.parse(check.stdout.trim().split("\n").at(-1)!);
      expect(report.dir).toBe(path.join(saveDir, "step_000001"));
      expect(report.step).toBe(1);
      expect(report.same).toBe(true);
      expect(report.after).toBe(path.join(saveDir, "step_000002"));
      expect(fs.readdirSync(saveDir).sort()).toEqual(["step_000001", "step_000002"]);
    } finally {
      fs.rmSync(saveDir, { recursive: true, force: true });
    }
  });
});
