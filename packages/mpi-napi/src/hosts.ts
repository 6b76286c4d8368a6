// What a job across several machines needs from mpirun beyond --hostfile, read from this
// process's environment so that a user sets it once, whatever the train script's flags:
//
//   PICOTRON_MPI_TCP=eth0 (or a CIDR such as 10.1.0.0/16): run MPI over TCP on that network
//     only. OpenMPI otherwise tries every interface it finds (docker bridges, VPNs) and may
//     pick one the other machines cannot reach; "TCP" also rules out faster transports, so
//     leave it unset on a cluster whose MPI has InfiniBand.
//   PICOTRON_MPI_AGENT=PROGRAM: how mpirun starts its daemon on another machine, in place of
//     ssh (OpenMPI's plm_rsh_agent; `scripts/hosts.sh agent` for the test hosts).
//
// Remote ranks are started by mpirun's daemon there, with a login's environment, not this
// one: OpenMPI passes only OMPI_* variables on, so the launcher names the others a rank
// needs (-x NAME copies this process's value).

/** The mpirun arguments that PICOTRON_MPI_TCP and PICOTRON_MPI_AGENT ask for. */
export function networkArgs(env: NodeJS.ProcessEnv): string[] {
  const args: string[] = [];
  const tcp = env.PICOTRON_MPI_TCP;
  if (tcp !== undefined && tcp !== "") {
    if (!/^[\w.:/@-]+$/.test(tcp)) {
      throw new Error(
        `PICOTRON_MPI_TCP must be one interface name or CIDR (eth0, 10.1.0.0/16), got '${tcp}'`,
      );
    }
    // ob1 with the tcp transport between machines (shared memory and self within one);
    // the daemons' own connections (oob) go over the same network.
    args.push("--mca", "pml", "ob1", "--mca", "btl", "self,vader,tcp");
    args.push("--mca", "btl_tcp_if_include", tcp, "--mca", "oob_tcp_if_include", tcp);
  }
  const agent = env.PICOTRON_MPI_AGENT;
  if (agent !== undefined && agent !== "") args.push("--mca", "plm_rsh_agent", agent);
  return args;
}

// Variables the ranks read (the collective timeout, thread counts, hub access, malloc tuning,
// colors); OMPI_* and PMIX_* reach them anyway.
const FORWARDED = /^(PICOTRON_\w+|HF_\w+|GLIBC_TUNABLES|NODE_OPTIONS|NO_COLOR|FORCE_COLOR)$/;

/** `-x NAME` for each variable of `env` that a remote rank needs. */
export function forwardedEnvArgs(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env)
    .filter((name) => FORWARDED.test(name) && env[name] !== undefined)
    .sort()
    .flatMap((name) => ["-x", name]);
}
