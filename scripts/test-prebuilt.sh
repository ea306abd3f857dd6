#!/usr/bin/env bash
# `npm run test:prebuilt`: builds the prebuilt packages and proves they work,
# on an x86_64 Debian machine (run as root; CI runs it after `npm test`).
#
#   1. scripts/setup-cross.sh          arm64 Rust std, qemu, napi-rs toolchains, arm64 Node, verdaccio
#   2. npm run artifacts               the four release binaries (glibc 2.17 sysroot; musl) into npm/<platform>/,
#                                      then scripts/check-glibc.sh: ELF machine, no symbol above GLIBC_2.17
#   3. npm run pack:all                the five tarballs in artifacts/
#   4. x64 release binary, natively:   the full ava suite, and scripts/smoke.mjs
#   5. arm64 release binary, qemu:     scripts/smoke.mjs (children started through qemu-aarch64-static),
#                                      and the ava files qemu-user can run (QEMU_FILES below), under the
#                                      arm64 Node, when binfmt_misc can run arm64 programs directly (ava
#                                      starts its workers and the tests their children with
#                                      process.execPath); else skipped, said so.
#                                      SYSV_SHM_SKIP_QEMU_AVA=1 skips it on purpose.
#   6. scripts/install-test.mjs        local registry, install as a user, x64 and arm64 (qemu)
#   7. no segment left behind
# Idempotent; removes its temp folders and restores binfmt_misc as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

TOOLS="${SYSV_SHM_TOOLS:-$HOME/.cache/sysv-shm-tools}"
NODE_ARM64="$TOOLS/node-arm64/bin/node"
source scripts/lib/qemu.sh # QEMU, QEMU_FILES, binfmt_arm64
t_start=$SECONDS
times=()
step() {
  printf '\n--- test:prebuilt: %s ---\n' "$*"
  t_step=$SECONDS
}
done_step() { times+=("$(printf '%4ds  %s' $((SECONDS - t_step)) "$1")"); }

# Segments that exist now, and that were made by a process that is gone:
# those are leaks (a live creator may be another program on this machine).
segments() { ipcs -m -p | awk 'NR>3 && NF>=4 {print $1, $3}' | sort; }
before=$(segments)

tmp=$(mktemp -d /tmp/sysv-shm-prebuilt.XXXXXX)
binfmt_restore=()
cleanup() {
  binfmt_undo
  rm -rf "$tmp"
}
trap cleanup EXIT

step "setup (scripts/setup-cross.sh)"
bash scripts/setup-cross.sh
done_step setup

step "build the four release binaries and check them (npm run artifacts: scripts/artifacts.mjs + check-glibc.sh, musl.sh)"
node scripts/artifacts.mjs
done_step "artifacts (x64 + arm64 glibc release builds, check-glibc; x64 + arm64 musl builds, scripts/musl.sh check)"

step "musl: the core crate's tests built for x86_64 and aarch64 musl and run (arm64 under qemu)"
bash scripts/musl.sh test-core
done_step "musl core tests"

step "pack the publishable tarballs (npm run pack:all)"
node scripts/pack-all.mjs
done_step pack:all

# The binaries under test, where any user can read them (the ava suite runs
# children as nobody, and the checkout may be in a private folder).
chmod 755 "$tmp"
cp npm/linux-x64-gnu/sysv-shm.linux-x64-gnu.node npm/linux-arm64-gnu/sysv-shm.linux-arm64-gnu.node "$tmp/"
chmod 644 "$tmp"/*.node

# The suite runs serially here: some of its tests compare system-wide segment
# counts before and after a call, which another test file running at the same
# time (ava's concurrency) can change; under qemu every window is ~15x wider.
AVA=(node_modules/ava/entrypoints/cli.mjs --serial --concurrency 1)

step "x64 release binary, natively: the ava suite and the smoke test"
SYSV_SHM_BINDING_PATH="$tmp/sysv-shm.linux-x64-gnu.node" node "${AVA[@]}"
SYSV_SHM_BINDING_PATH="$tmp/sysv-shm.linux-x64-gnu.node" node scripts/smoke.mjs --expect-arch x64
done_step "x64: ava + smoke"

step "arm64 release binary under qemu: the smoke test"
SYSV_SHM_BINDING_PATH="$tmp/sysv-shm.linux-arm64-gnu.node" SYSV_SHM_SMOKE_WRAP="$QEMU" SYSV_SHM_UNDER_QEMU=1 \
  "$QEMU" "$NODE_ARM64" scripts/smoke.mjs --expect-arch arm64
done_step "arm64 (qemu): smoke"

step "arm64 release binary under qemu: the ava suite (the files qemu-user can run)"
if [ "${SYSV_SHM_SKIP_QEMU_AVA:-0}" = 1 ]; then
  echo "SKIPPED: SYSV_SHM_SKIP_QEMU_AVA=1; the smoke test above covered the arm64 binary."
  done_step "arm64 (qemu): ava SKIPPED (SYSV_SHM_SKIP_QEMU_AVA=1)"
elif binfmt_arm64 "$NODE_ARM64"; then
  # As on an arm64 machine: `node` on PATH is the arm64 one (the CLI's shebang,
  # examples), and the binary sits where a dev checkout has its local build
  # (tests copy it from there for peers run as nobody). Removed right after.
  mkdir -p "$tmp/arm64-bin"
  ln -sfn "$NODE_ARM64" "$tmp/arm64-bin/node"
  cp "$tmp/sysv-shm.linux-arm64-gnu.node" sysv-shm.linux-arm64-gnu.node
  binfmt_restore=("rm -f '$PWD/sysv-shm.linux-arm64-gnu.node'" "${binfmt_restore[@]}")
  # The files qemu-user can run, and the tests left out: QEMU_FILES in scripts/lib/qemu.sh.
  qemu_list=$(qemu_files)
  mapfile -t files <<<"$qemu_list"
  SYSV_SHM_UNDER_QEMU=1 PATH="$tmp/arm64-bin:$PATH" "$NODE_ARM64" "${AVA[@]}" "${QEMU_LEFT_OUT[@]}" "${files[@]}"
  done_step "arm64 (qemu): ava"
else
  echo "SKIPPED: binfmt_misc cannot run arm64 programs here, so ava (which starts workers and children"
  echo "with process.execPath) cannot run under qemu; the smoke test above covered the arm64 binary."
  done_step "arm64 (qemu): ava SKIPPED (no binfmt_misc)"
fi
binfmt_undo

step "install test (scripts/install-test.mjs)"
node scripts/install-test.mjs
done_step "install test (verdaccio, x64 + arm64)"

step "no segment left behind"
leaked=()
while read -r id cpid; do
  [ -n "$id" ] && ! kill -0 "$cpid" 2>/dev/null && leaked+=("$id")
done < <(comm -13 <(echo "$before") <(segments))
if [ ${#leaked[@]} -gt 0 ]; then
  ipcs -m -p
  echo "test:prebuilt left these segments behind: ${leaked[*]}" >&2
  exit 1
fi
echo none

printf '\ntest:prebuilt: timings\n'
printf '  %s\n' "${times[@]}"
printf '  %4ds  total\n' $((SECONDS - t_start))
