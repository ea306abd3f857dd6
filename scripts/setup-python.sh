#!/usr/bin/env bash
# Makes .venv/ at the repo root with sysv_ipc (PyPI) for the Python interop
# tests (__test__/interop-python.spec.mjs), idempotently. Installs python3,
# venv and headers with apt where they are missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSV_IPC_VERSION=1.2.0

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup-python: please install: $*" >&2
    exit 1
  fi
}

command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv python3-dev
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  rm -rf .venv
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf .venv
    python3 -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import sysv_ipc, sys; sys.exit(sysv_ipc.VERSION != '$SYSV_IPC_VERSION')" >/dev/null 2>&1; then
  # sysv_ipc may build from source: that needs a C compiler and Python's headers.
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "sysv_ipc==$SYSV_IPC_VERSION"; then
    apt_install python3-dev gcc
    .venv/bin/python -m pip install -q --disable-pip-version-check "sysv_ipc==$SYSV_IPC_VERSION"
  fi
fi
echo "setup-python: .venv has sysv_ipc $(.venv/bin/python -c 'import sysv_ipc; print(sysv_ipc.VERSION)')"
