#!/usr/bin/env bash
# Sets up the Python side of the interop tests, idempotently: a virtualenv at
# .venv/ (repo root, gitignored) with sysv_ipc from PyPI. sysv_ipc builds a C
# extension, so it needs a C compiler and Python's headers; as root on
# Debian/Ubuntu the missing system packages are installed with apt-get.
#
# Usage: bash scripts/setup-python.sh      (PYTHON=python3.12 to choose one)
# Prints the venv's python on the last line. Exits non-zero, saying why, if
# it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSV_IPC_VERSION=1.2.0
VENV=.venv
PY=${PYTHON:-python3}

if [ -x "$VENV/bin/python" ] &&
  "$VENV/bin/python" -c "import sysv_ipc, sys; sys.exit(sysv_ipc.VERSION != '$SYSV_IPC_VERSION')" 2>/dev/null; then
  echo "setup-python: $VENV has sysv_ipc $SYSV_IPC_VERSION"
  echo "$PWD/$VENV/bin/python"
  exit 0
fi

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-python: installing $*" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup-python: please install: $*" >&2
    exit 1
  fi
}

if ! command -v "$PY" >/dev/null 2>&1; then
  apt_install python3 python3-venv python3-dev
  PY=python3
fi
# The venv module (with ensurepip) and the headers to build sysv_ipc's extension.
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
has_headers() {
  "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
if ! has_headers; then
  apt_install python3-dev
  has_headers || { echo "setup-python: Python.h of $PY still missing" >&2; exit 1; }
fi
command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev

# Reuse a working venv (others may keep packages in it); make one otherwise.
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; }; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "sysv_ipc==$SYSV_IPC_VERSION"
"$VENV/bin/python" -c 'import sysv_ipc; print("setup-python: sysv_ipc", sysv_ipc.VERSION, "in", sysv_ipc.__file__)'
echo "$PWD/$VENV/bin/python"
