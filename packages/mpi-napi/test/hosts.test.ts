// What the launcher adds for a job across machines (src/hosts.ts).
import { afterEach, describe, expect, test } from "vitest";
import { forwardedEnvArgs, networkArgs } from "../src/hosts.ts";
import { mpirunCommand } from "../src/launcher.ts";

describe("networkArgs", () => {
  test("nothing by default", () => {
    expect(networkArgs({})).toEqual([]);
    expect(networkArgs({ PICOTRON_MPI_TCP: "", PICOTRON_MPI_AGENT: "" })).toEqual([]);
  });

  test("PICOTRON_MPI_TCP forces TCP on that network, for the ranks and for mpirun's daemons", () => {
    expect(networkArgs({ PICOTRON_MPI_TCP: "198.18.0.0/24" }).join(" ")).toBe(
      "--mca pml ob1 --mca btl self,vader,tcp --mca btl_tcp_if_include 198.18.0.0/24 --mca oob_tcp_if_include 198.18.0.0/24",
    );
    expect(() => networkArgs({ PICOTRON_MPI_TCP: "eth0 eth1" })).toThrow(
      "PICOTRON_MPI_TCP must be one interface name or CIDR (eth0, 10.1.0.0/16), got 'eth0 eth1'",
    );
  });

  test("PICOTRON_MPI_AGENT replaces ssh", () => {
    expect(networkArgs({ PICOTRON_MPI_AGENT: "/opt/agent --quiet" })).toEqual([
      "--mca",
      "plm_rsh_agent",
      "/opt/agent --quiet",
    ]);
  });
});

describe("variables for remote ranks", () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  test("the ones ranks read are named with -x, others are not", () => {
    const env = {
      PICOTRON_COLLECTIVE_TIMEOUT: "5",
      HF_TOKEN: "t",
      NO_COLOR: "1",
      HOME: "/root",
      OMPI_X: "1",
    };
    expect(forwardedEnvArgs(env)).toEqual([
      "-x",
      "HF_TOKEN",
      "-x",
      "NO_COLOR",
      "-x",
      "PICOTRON_COLLECTIVE_TIMEOUT",
    ]);
  });

  test("the launcher passes them only with a hostfile (ranks on this machine inherit them)", () => {
    process.env.PICOTRON_COLLECTIVE_TIMEOUT = "7";
    expect(mpirunCommand({ worldSize: 2 }).args).not.toContain("PICOTRON_COLLECTIVE_TIMEOUT");
    const { args } = mpirunCommand({ worldSize: 2, hostfile: "hosts" });
    expect(args.join(" ")).toContain("-x PICOTRON_COLLECTIVE_TIMEOUT");
  });
});
