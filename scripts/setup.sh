#!/usr/bin/env bash
# One-time set-up on Debian/Ubuntu: system packages (OpenMPI), pnpm, then the workspace install
# (which also compiles the MPI addon). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v mpicc >/dev/null 2>&1 || missing+=(openmpi-bin libopenmpi-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++ make python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1; then
  echo "installing pnpm"
  COREPACK_INTEGRITY_KEYS=0 corepack enable pnpm 2>/dev/null && pnpm --version >/dev/null 2>&1 ||
    $SUDO npm install -g pnpm@10 >/dev/null
fi

pnpm install --frozen-lockfile
