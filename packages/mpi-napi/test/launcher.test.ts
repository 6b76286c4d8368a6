// The launcher: a script that needs several ranks starts itself under mpirun.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { mpirunCommand } from "../src/launcher.ts";
import {
  packageDir,
  plainEnv,
  readResults,
  report,
  requireMpirun,
  run,
  runWorkers,
  tempDir,
} from "./helpers.ts";

/** `node --import tsx test/workers/launch.ts ...args`, from a shell that knows nothing of MPI. */
function launch(args: string[]) {
  return run(
    process.execPath,
    ["--import", "tsx", join("test", "workers", "launch.ts"), ...args],
    plainEnv(),
  );
}

/** Processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

describe("mpirunCommand", () => {
  const argv = process.argv;
  afterEach(() => {
    process.argv = argv;
  });

  test("reruns this script with node's flags under mpirun -n", () => {
    process.argv = [process.execPath, "/some/train.ts", "--config", "c.json"];
    const { command, args } = mpirunCommand({ worldSize: 2 });
    expect(command).toBe("mpirun");
    expect(args.slice(0, 2)).toEqual(["-n", "2"]);
    expect(args).toContain("--tag-output");
    expect(args.join(" ")).toContain("--bind-to none");
    expect(args.slice(-(4 + process.execArgv.length))).toEqual([
      process.execPath,
      ...process.execArgv,
      "/some/train.ts",
      "--config",
      "c.json",
    ]);
  });

  test("oversubscribes only beyond this machine's cores, and not with a hostfile", () => {
    const cores = availableParallelism();
    expect(mpirunCommand({ worldSize: cores }).args).not.toContain("--oversubscribe");
    expect(mpirunCommand({ worldSize: cores + 1 }).args).toContain("--oversubscribe");
    const withHosts = mpirunCommand({
      worldSize: cores + 1,
      hostfile: "hosts.txt",
      mpirunArgs: ["-x", "PATH"],
    });
    expect(withHosts.args).not.toContain("--oversubscribe");
    expect(withHosts.args.join(" ")).toContain("--hostfile hosts.txt");
    expect(withHosts.args.join(" ")).toContain(`-x PATH ${process.execPath}`);
  });

  test("allows running as root exactly when this process is root", () => {
    const { env } = mpirunCommand({ worldSize: 2 });
    const root = process.getuid?.() === 0;
    expect(env.OMPI_ALLOW_RUN_AS_ROOT === "1" && env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM === "1").toBe(root);
  });
});

describe("ensureLaunched", () => {
  beforeAll(requireMpirun);

  test("a script run without mpirun relaunches itself on 2 ranks, and adds no output of its own", () => {
    const dir = tempDir();
    const outcome = launch([dir, "sum", "2"]);
    expect(outcome.code, report(outcome)).toBe(0);
    expect(outcome.stdout).toBe("sum 3 over 2 ranks\nconsole.log 2\n"); // rank 0's lines, nothing else
    expect(outcome.stderr).toBe("");
    for (const rank of [0, 1]) {
      expect(readResults(dir, rank)).toEqual({ sum: [3], size: [2], localWorldSize: [2] });
    }
  });

  test("lines of 4 ranks printing at once arrive whole", () => {
    const outcome = launch([tempDir(), "lines", "4"]);
    expect(outcome.code, report(outcome)).toBe(0);
    const lines = outcome.stdout.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(4 * 1500);
    const next = [0, 0, 0, 0];
    for (const line of lines) {
      const match = /^rank (\d) line (\d+) (\d+)$/.exec(line);
      expect(match, `a broken line: ${line}`).not.toBeNull();
      const rank = Number(match![1]);
      expect(Number(match![2])).toBe(next[rank]!++); // each rank's lines in order
      expect(match![3]).toBe(String(rank).repeat(100));
    }
  });

  test("the launcher exits with the job's failure", () => {
    const outcome = launch([tempDir(), "fail", "2"]);
    expect(outcome.code, report(outcome)).toBe(1);
    expect(outcome.stderr.split("[rank 1] Error: failure on rank 1").length - 1).toBe(1);
  });

  test("a hostfile and extra mpirun arguments reach mpirun", () => {
    // More ranks than cores: without the hostfile's slots mpirun would refuse them, as the
    // launcher does not oversubscribe when given a hostfile.
    const ranks = availableParallelism() + 2;
    const dir = tempDir();
    const hostfile = join(dir, "hosts");
    writeFileSync(hostfile, `localhost slots=${ranks}\n`);
    const outcome = launch([dir, "hosts", String(ranks), hostfile]);
    expect(outcome.code, report(outcome)).toBe(0);
    for (let rank = 0; rank < ranks; rank++) {
      expect(readResults(dir, rank), `rank ${rank}`).toEqual({ size: [ranks], marked: [1] });
    }
  });

  test("under mpirun with the wrong number of ranks, the script refuses to start", () => {
    const outcome = runWorkers(1, "launch.ts", [tempDir(), "sum", "2"]);
    expect(outcome.code).not.toBe(0);
    expect(outcome.stderr).toContain("this MPI job has 1 ranks, but the configuration needs 2");
  });

  /** Starts `launch.ts DIR MODE 2` and resolves once both ranks printed "ready". */
  async function startWaiting(mode: string) {
    const dir = tempDir(); // on every rank's command line, so we can look for leftovers
    const script = join("test", "workers", "launch.ts");
    const launcher = spawn(process.execPath, ["--import", "tsx", script, dir, mode, "2"], {
      cwd: packageDir,
      env: plainEnv(),
    });
    let stderr = "";
    launcher.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => launcher.on("close", (code) => resolve(code)));
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ranks never got ready: ${output}`)), 90_000);
      launcher.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output === "ready\nready\n") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return { dir, launcher, exited, stderr: () => stderr };
  }

  test("killing the launcher ends mpirun and every rank", async () => {
    const { dir, launcher, exited } = await startWaiting("wait");
    expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(3); // launcher, mpirun, ranks
    launcher.kill("SIGTERM");
    expect(await exited).not.toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  test("Ctrl-C asks the ranks to stop and says so in its own words", async () => {
    const { dir, launcher, exited, stderr } = await startWaiting("graceful");
    launcher.kill("SIGINT");
    expect(await exited, stderr()).toBe(0);
    expect(stderr()).toBe(
      "interrupted (Ctrl-C): asking every rank to save and stop (again to end at once)\n" +
        "interrupted (Ctrl-C): ranks saved and stopped\n",
    );
    expect(processesMentioning(dir)).toEqual([]);
  });
});
