#!/usr/bin/env bash
# Runs a command (the test suite) in a new, private IPC namespace: it never
# sees or touches the host's System V segments, semaphores and message queues,
# and theirs never disturb it. Afterwards, checks that the command left no IPC
# object in the namespace (everything in there was made by it).
#
#   bash scripts/in-ipc-namespace.sh npm test
#
# Needs `unshare --ipc` (CAP_SYS_ADMIN, e.g. root). Where it is not allowed:
# with CI=true this fails, saying why; otherwise it warns and runs the command
# in the host's namespace (the tests still clean up after themselves).
set -euo pipefail

if [ "${SYSV_SHM_IN_IPC_NAMESPACE:-}" = 1 ]; then
  status=0
  "$@" || status=$?
  left=$(ipcs -m -s -q | awk '$1 ~ /^0x/ {print}')
  if [ -n "$left" ]; then
    ipcs -a
    echo "in-ipc-namespace: the command left IPC objects behind:" >&2
    echo "$left" >&2
    [ "$status" = 0 ] && status=1
  fi
  exit "$status"
fi

if unshare --ipc true 2>/dev/null; then
  echo "in-ipc-namespace: running in a new IPC namespace: $*"
  exec env SYSV_SHM_IN_IPC_NAMESPACE=1 unshare --ipc -- bash "$0" "$@"
fi

msg="in-ipc-namespace: 'unshare --ipc' is not allowed here (it needs CAP_SYS_ADMIN, e.g. root)"
if [ "${CI:-}" = true ]; then
  echo "$msg: CI must run the tests isolated from the host's IPC objects" >&2
  exit 1
fi
echo "$msg; running in the host's IPC namespace instead" >&2
exec "$@"
