#!/usr/bin/env bash
# Makes .venv/ at the repo root with sysv_ipc (PyPI) for the Python interop
# tests (__test__/interop-python.spec.mjs), idempotently. Installs python3,
# venv and headers with apt where they are missing and we are root.
#
#   bash scripts/setup-python.sh            fails (exit 1) if it cannot
#   bash scripts/setup-python.sh --pretest  npm's `pretest`: the same, but where
#       it cannot (no python3-venv and not root, no network) it says why and lets
#       `npm test` go on, where interop-python then fails with that reason; with
#       CI=true it fails as without --pretest. When .venv is ready: one Python start.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSV_IPC_VERSION=1.2.0
ready() { .venv/bin/python -c "import sysv_ipc, sys; sys.exit(sysv_ipc.VERSION != '$SYSV_IPC_VERSION')" >/dev/null 2>&1; }

if [ "${1:-}" = --pretest ]; then
  ready && exit 0
  bash "$0" && exit 0
  if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then exit 1; fi
  echo "setup-python: could not make .venv (see above); npm test goes on, and its Python interop tests fail until \`bash scripts/setup-python.sh\` succeeds" >&2
  exit 0
fi

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup-python: please install: $* (e.g. sudo apt-get install $*), then run: bash scripts/setup-python.sh" >&2
    exit 1
  fi
}

command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv python3-dev
# A venv whose pip is missing (made where python3-venv was not installed) is made again.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    python3 -m venv .venv
  fi
fi
if ! ready; then
  # sysv_ipc may build from source: that needs a C compiler and Python's headers.
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "sysv_ipc==$SYSV_IPC_VERSION"; then
    apt_install python3-dev gcc
    .venv/bin/python -m pip install -q --disable-pip-version-check "sysv_ipc==$SYSV_IPC_VERSION"
  fi
fi
echo "setup-python: .venv has sysv_ipc $(.venv/bin/python -c 'import sysv_ipc; print(sysv_ipc.VERSION)')"
