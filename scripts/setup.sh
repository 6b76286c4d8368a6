#!/usr/bin/env bash
# One-time set-up on Debian/Ubuntu: system packages (OpenMPI, OpenBLAS), pnpm, then the workspace install
# (which also compiles the MPI and BLAS addons). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v mpicc >/dev/null 2>&1 || missing+=(openmpi-bin libopenmpi-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++ make python3)
# the cross-host test (scripts/hosts.test.ts): network namespaces, the launch agent (setpriv, unshare)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v setpriv >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# OpenBLAS: the second GEMM the tensor library measures against onnxruntime's (optional; small)
pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev pkg-config)
# the dashboard's browser test runs Debian's chromium (playwright-core never downloads a browser here)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pnpm: the version package.json pins, from the npm registry (corepack's own download can be refused)
pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null)" != "$pnpm_version" ]; then
  echo "installing pnpm $pnpm_version"
  $SUDO npm install -g --force "pnpm@$pnpm_version" >/dev/null
fi

pnpm install --frozen-lockfile
