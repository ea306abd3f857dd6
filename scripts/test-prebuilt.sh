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
QEMU=/usr/bin/qemu-aarch64-static
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
  local i
  for ((i = ${#binfmt_restore[@]} - 1; i >= 0; i--)); do eval "${binfmt_restore[$i]}" || true; done
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

# Lets the kernel run arm64 programs through qemu (binfmt_misc), as
# docker/setup-qemu-action does; records how to undo each change.
binfmt_arm64() {
  local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ "$(id -u)" = 0 ] && [ -f "$conf" ] || return 1
  if [ ! -e "$dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
    binfmt_restore+=("umount $dir")
  fi
  if [ -e "$dir/qemu-aarch64" ]; then
    if ! grep -qx enabled "$dir/qemu-aarch64"; then
      echo 1 >"$dir/qemu-aarch64" || return 1
      binfmt_restore+=("echo 0 > $dir/qemu-aarch64")
    fi
  else
    cat "$conf" >"$dir/register" 2>/dev/null || return 1
    binfmt_restore+=("echo -1 > $dir/qemu-aarch64")
  fi
  [ "$("$NODE_ARM64" -p process.arch 2>/dev/null)" = arm64 ]
}

step "arm64 release binary under qemu: the ava suite (the files qemu-user can run)"
if [ "${SYSV_SHM_SKIP_QEMU_AVA:-0}" = 1 ]; then
  echo "SKIPPED: SYSV_SHM_SKIP_QEMU_AVA=1; the smoke test above covered the arm64 binary."
  done_step "arm64 (qemu): ava SKIPPED (SYSV_SHM_SKIP_QEMU_AVA=1)"
elif binfmt_arm64; then
  # As on an arm64 machine: `node` on PATH is the arm64 one (the CLI's shebang,
  # examples), and the binary sits where a dev checkout has its local build
  # (tests copy it from there for peers run as nobody). Removed right after.
  mkdir -p "$tmp/arm64-bin"
  ln -sfn "$NODE_ARM64" "$tmp/arm64-bin/node"
  cp "$tmp/sysv-shm.linux-arm64-gnu.node" sysv-shm.linux-arm64-gnu.node
  binfmt_restore=("rm -f '$PWD/sysv-shm.linux-arm64-gnu.node'" "${binfmt_restore[@]}")
  # The spec files that qemu-user (7.2) can run. Left out, and run natively on
  # arm64 in .github/workflows/release.yml:
  # - message-queue: receiveAsync's cancellation needs a signal to interrupt
  #   a thread blocked in msgrcv; its synchronous path across processes is in
  #   scripts/smoke.mjs;
  # - futex-fallback: futex and channel run here anyway on that fallback
  #   (qemu-user answers futex_waitv with ENOSYS, so waitAsync and recvAsync
  #   take the FUTEX_WAIT path without SYSV_SHM_FUTEX_WAITV=0);
  # - cli, guide: they assume native speed (the guide's writer is done before a
  #   Node under qemu has started its reader; rm --older-than 3s) or a native
  #   process list (attachers' command lines start with the qemu interpreter),
  #   and stat's SHM_STAT_ANY fallback, a shmctl command qemu-user refuses.
  # A file added to __test__ is not run here until it is listed.
  # Two tests of listed files are left out too, for the same SHM_STAT_ANY /
  # SEM_STAT_ANY reason: restoring a mode-0 object's mode (the owner may not
  # IPC_STAT it) and listing sets a user may not read; and the tests that
  # count a process's futex calls under strace, as qemu makes thousands of its own.
  QEMU_FILES=(shared-memory cross-process lifetime loader permissions semaphore
    interop-ipcs interop-c interop-python futex channel)
  QEMU_LEFT_OUT=(--match '!*set mode 0 (no read permission*' --match '!listSemaphores lists every set*'
    --match '!*(strace)')
  files=()
  for f in "${QEMU_FILES[@]}"; do
    [ -f "__test__/$f.spec.mjs" ] || { echo "test-prebuilt: QEMU_FILES names __test__/$f.spec.mjs, which is gone" >&2; exit 1; }
    files+=("__test__/$f.spec.mjs")
  done
  SYSV_SHM_UNDER_QEMU=1 PATH="$tmp/arm64-bin:$PATH" "$NODE_ARM64" "${AVA[@]}" "${QEMU_LEFT_OUT[@]}" "${files[@]}"
  done_step "arm64 (qemu): ava"
else
  echo "SKIPPED: binfmt_misc cannot run arm64 programs here, so ava (which starts workers and children"
  echo "with process.execPath) cannot run under qemu; the smoke test above covered the arm64 binary."
  done_step "arm64 (qemu): ava SKIPPED (no binfmt_misc)"
fi
for ((i = ${#binfmt_restore[@]} - 1; i >= 0; i--)); do eval "${binfmt_restore[$i]}"; done
binfmt_restore=()

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
