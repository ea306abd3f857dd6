# Sourced by scripts/test-prebuilt.sh and scripts/test-runtimes.sh: running
# arm64 programs under qemu-user on an x86_64 host.
QEMU=/usr/bin/qemu-aarch64-static

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
# count a process's futex calls under strace, as qemu makes thousands of its own;
# and the test of 8 workers × 1,000 concurrent waitAsyncs: it is about the
# futex_waitv backend's waiter lists, and without futex_waitv (qemu lacks it) each
# wait is a thread of the fallback: 8,000 threads, which qemu-user starts at about
# ten a second (measured here), past ava's timeout. The fallback's own thread
# tests run.
QEMU_FILES=(shared-memory cross-process lifetime loader permissions semaphore
  interop-ipcs interop-c interop-python futex channel)
QEMU_LEFT_OUT=(--match '!*set mode 0 (no read permission*' --match '!listSemaphores lists every set*'
  --match '!*(strace)' --match '!8 worker threads starting 1,000 waitAsyncs*')

# Prints the __test__ paths of QEMU_FILES, failing on a name that is gone.
qemu_files() {
  local f
  for f in "${QEMU_FILES[@]}"; do
    [ -f "__test__/$f.spec.mjs" ] || { echo "QEMU_FILES names __test__/$f.spec.mjs, which is gone" >&2; return 1; }
    printf '%s\n' "__test__/$f.spec.mjs"
  done
}

# Lets the kernel run arm64 programs through qemu (binfmt_misc), as
# docker/setup-qemu-action does; appends to the caller's array binfmt_restore
# how to undo each change. Succeeds when the arm64 program $1 (a Node) then
# runs directly.
binfmt_arm64() {
  local probe=$1 dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
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
  [ "$("$probe" -p process.arch 2>/dev/null)" = arm64 ]
}

# Undoes what binfmt_arm64 did, last change first.
binfmt_undo() {
  local i
  for ((i = ${#binfmt_restore[@]} - 1; i >= 0; i--)); do eval "${binfmt_restore[$i]}" || true; done
  binfmt_restore=()
}
