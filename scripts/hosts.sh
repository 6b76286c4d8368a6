#!/usr/bin/env bash
# Test hosts on one machine: N Linux network namespaces ("picohost1" ... "picohostN"), each with
# its own address and host name, joined by a bridge that lives in a namespace of its own
# ("picoswitch"), so it is connected to no real interface and has no route out. OpenMPI then
# runs a job across them as across machines, over TCP. Root only.
#
#   scripts/hosts.sh up [N]          make N hosts (default 2); removes an earlier set first
#   scripts/hosts.sh down            remove everything `up` made (safe to run again)
#   scripts/hosts.sh run HOST CMD..  run CMD on HOST, keeping this environment (the "login")
#   scripts/hosts.sh agent HOST CMD. OpenMPI's launch agent (plm_rsh_agent), in place of ssh
#   scripts/hosts.sh cut HOST        take HOST's link down (its cable pulled)
#   scripts/hosts.sh mend HOST       bring HOST's link back
#   scripts/hosts.sh pids HOST       the processes still running on HOST
#   scripts/hosts.sh hostfile [N]    print an OpenMPI hostfile of the hosts (one slot per rank)
#
# Addresses: 198.18.0.1 ... (198.18.0.0/15 is reserved for benchmarking networks, RFC 2544), so
# nothing outside this machine is ever addressed; each host resolves the others' names through
# its own /etc/hosts (`ip netns exec` lays /etc/netns/HOST/hosts over it), without DNS.
set -euo pipefail

PREFIX=picohost
SWITCH=picoswitch
SUBNET=198.18.0
MAX_HOSTS=8

die() {
  echo "hosts.sh: $*" >&2
  exit 1
}

host_index() {
  [[ "$1" =~ ^${PREFIX}([1-9])$ ]] || die "unknown host '$1': the hosts are ${PREFIX}1 ... ${PREFIX}${MAX_HOSTS}"
  echo "${BASH_REMATCH[1]}"
}

require_root() {
  [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
  command -v ip >/dev/null || die "ip was not found: apt-get install iproute2"
  command -v unshare >/dev/null || die "unshare was not found: apt-get install util-linux"
}

existing_hosts() {
  ip netns list | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" | sort || true
}

down() {
  require_root
  # Whatever still runs on a host goes with it (a test that failed may have left a job).
  for ns in $(existing_hosts) $(ip netns list | awk '{print $1}' | grep -x "$SWITCH" || true); do
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
}

up() {
  local n=${1:-2}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$MAX_HOSTS" ] ||
    die "the number of hosts must be 1 to $MAX_HOSTS, got '$n'"
  require_root
  down
  # A failure half-way leaves nothing behind.
  trap 'down; exit 1' ERR
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  ip netns exec "$SWITCH" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  local hosts_file
  hosts_file=$(printf '127.0.0.1 localhost\n')
  for i in $(seq 1 "$n"); do hosts_file+=$(printf '\n%s.%d %s%d' "$SUBNET" "$i" "$PREFIX" "$i"); done
  for i in $(seq 1 "$n"); do
    local ns=$PREFIX$i
    ip netns add "$ns"
    # The cable: eth0 on the host, port$i on the switch.
    ip link add "pico$$-$i" type veth peer name "port$i" netns "$SWITCH"
    ip link set "pico$$-$i" netns "$ns"
    ip -n "$ns" link set "pico$$-$i" name eth0
    ip -n "$SWITCH" link set "port$i" master br0 up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # IPv4 only: no IPv6 link-local chatter, and one address per host for MPI to pick.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    mkdir -p "/etc/netns/$ns"
    printf '%s\n' "$hosts_file" >"/etc/netns/$ns/hosts"
    # No name server: a name that is not in hosts fails at once instead of asking one.
    : >"/etc/netns/$ns/resolv.conf"
  done
  trap - ERR
  echo "hosts up: $(existing_hosts | tr '\n' ' ')(${SUBNET}.1-${n}, bridge in namespace $SWITCH)"
}

# Runs "$@" in HOST's network namespace and in a UTS namespace of its own named HOST.
enter() {
  local host=$1
  shift
  host_index "$host" >/dev/null
  ip netns list | awk '{print $1}' | grep -qx "$host" || die "host $host is not up: run scripts/hosts.sh up"
  exec ip netns exec "$host" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

agent() {
  # OpenMPI calls `agent [options] HOST COMMAND...` as it would call ssh; ssh options are not ours.
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
  [ $# -ge 2 ] || die "agent: usage: agent HOST COMMAND..."
  local host=$1
  shift
  # Like ssh, the remote command starts with a login's environment, not the caller's: what a
  # rank needs must reach it through mpirun (-x NAME), as on real machines. OpenMPI's ssh
  # command is one shell string, so a shell runs it. setpriv's parent-death signal ends the
  # remote daemon when mpirun ends, as the end of an ssh session does; it survives exec but
  # not fork, so OpenMPI's usual command (" orted -mca ...") is exec'd by the shell.
  local command="$*"
  command="${command#"${command%%[! ]*}"}"
  case "$command" in orted\ * | */orted\ *) command="exec $command" ;; esac
  enter "$host" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="${HOME:-/root}" \
    setpriv --pdeathsig KILL -- sh -c "$command"
}

link() {
  local i
  i=$(host_index "$1")
  require_root
  ip -n "$SWITCH" link set "port$i" "$2"
}

hostfile() {
  local n=${1:-$(existing_hosts | wc -l)}
  [ "$n" -ge 1 ] || die "no hosts are up: run scripts/hosts.sh up"
  for i in $(seq 1 "$n"); do echo "$PREFIX$i slots=1"; done
}

command=${1:-}
[ $# -eq 0 ] || shift
case "$command" in
up) up "$@" ;;
down) down ;;
run)
  [ $# -ge 2 ] || die "usage: hosts.sh run HOST COMMAND..."
  require_root
  enter "$@"
  ;;
agent) agent "$@" ;;
cut) link "${1:-}" down ;;
mend) link "${1:-}" up ;;
pids)
  host_index "${1:-}" >/dev/null
  ip netns pids "$1"
  ;;
hostfile) hostfile "$@" ;;
*) die "usage: hosts.sh up [N] | down | run HOST CMD... | agent HOST CMD... | cut HOST | mend HOST | pids HOST | hostfile [N]" ;;
esac
