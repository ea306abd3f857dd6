#!/usr/bin/env bash
# `npm run test:loaded`: the whole `npm test`, three times in a row, with every
# core kept busy by a busy loop beside it (a user's laptop compiling, a shared
# CI runner). Every run must pass: a test that fails only when the machine is
# busy is a flaky test, and this is where it shows.
#
#   npm run test:loaded                       3 runs, one busy loop per core (nproc)
#   SYSV_SHM_LOADED_RUNS=1 npm run test:loaded
#
# The busy loops are plain shell loops (no system dependency), started before
# the first run and always stopped: at the end, on failure, on Ctrl-C or
# SIGTERM, and each loop also ends by itself once this script is gone (even
# after a SIGKILL). All runs are made even if one fails, then the exit status
# is 1 if any failed. Run it isolated like npm test:
#   bash scripts/in-ipc-namespace.sh npm run test:loaded
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${SYSV_SHM_LOADED_RUNS:-3}
loops=$(nproc)
me=$$
busy=()

stop_busy() {
  [ ${#busy[@]} -gt 0 ] || return 0
  kill "${busy[@]}" 2>/dev/null
  wait "${busy[@]}" 2>/dev/null
  busy=()
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT
trap 'stop_busy; exit 143' TERM

for _ in $(seq "$loops"); do
  # Pure user-space spinning; every ~100k turns it checks that this script still lives.
  (
    while kill -0 "$me" 2>/dev/null; do
      for ((i = 0; i < 100000; i++)); do :; done
    done
  ) &
  busy+=($!)
done
echo "test:loaded: $loops busy loops (pids ${busy[*]}), $runs runs of npm test"

failed=()
start=$SECONDS
for run in $(seq "$runs"); do
  echo
  echo "=== test:loaded: run $run of $runs (load: $(cut -d' ' -f1-3 /proc/loadavg)) ==="
  t0=$SECONDS
  npm test
  status=$?
  # Ctrl-C reaches npm too, which exits 130 (143 for SIGTERM); bash then runs no INT trap
  # (npm "handled" it), so stop here: the EXIT trap stops the busy loops.
  if [ "$status" = 130 ] || [ "$status" = 143 ]; then
    echo "test:loaded: interrupted in run $run" >&2
    exit "$status"
  fi
  if [ "$status" = 0 ]; then result=passed; else result=FAILED; failed+=("$run"); fi
  echo "=== test:loaded: run $run of $runs $result in $((SECONDS - t0)) s ==="
done
stop_busy

echo
echo "test:loaded: $runs runs in $((SECONDS - start)) s; failed: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
