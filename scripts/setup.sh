#!/usr/bin/env bash
# Installs what building and testing sysv-shm needs on a Debian/Ubuntu machine,
# idempotently: system packages (ipcs/ipcrm/setpriv/unshare from util-linux, a C
# compiler for the interop tests, strace, and what node-gyp needs). Rust comes from rustup and crates from
# crates.io; npm packages from `npm install`.
set -euo pipefail

need=()
command -v ipcs >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# node-gyp builds the shm-typed-array devDependency (the benchmark's comparison) at npm install.
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The tests count system calls with strace (no syscall per notify / per message).
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: add \$HOME/.cargo/bin to PATH" >&2
  else
    echo "setup: Rust is required to build from source: install it with rustup (https://rustup.rs)" >&2
  fi
  exit 1
fi
echo "setup: system packages and Rust are present"
