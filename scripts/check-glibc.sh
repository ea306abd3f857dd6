#!/usr/bin/env bash
# Checks the prebuilt binaries in npm/<platform>/: each is a 64-bit ELF shared
# object for its platform's machine (readelf -h: X86-64 or AArch64), and no
# dynamic symbol needs a glibc newer than GLIBC_MAX (default 2.17, what
# CentOS 7 has and what the napi-rs cross toolchains link against), read with
# `objdump -T`. Exits 1 on the first binary that fails, 2 if there is none.
#
#   scripts/check-glibc.sh                      # every npm/linux-*-gnu/*.node
#   scripts/check-glibc.sh path/to/x.linux-arm64-gnu.node
set -euo pipefail
cd "$(dirname "$0")/.."
max="${GLIBC_MAX:-2.17}"

if [ $# -eq 0 ]; then
  shopt -s nullglob
  set -- npm/linux-*-gnu/*.node
  [ $# -gt 0 ] || { echo "check-glibc: no npm/linux-*-gnu/*.node: run npm run artifacts" >&2; exit 2; }
fi

# version_gt A B: A > B, in version order
version_gt() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n1)" = "$1" ]; }

fail=0
for f in "$@"; do
  case "$f" in
    *linux-x64-gnu*) machine='Advanced Micro Devices X86-64' ;;
    *linux-arm64-gnu*) machine='AArch64' ;;
    *) echo "check-glibc: $f: cannot tell its platform from its name" >&2; exit 2 ;;
  esac
  header=$(readelf -h "$f")
  got_machine=$(sed -n 's/^ *Machine: *//p' <<<"$header")
  got_class=$(sed -n 's/^ *Class: *//p' <<<"$header")
  got_type=$(sed -n 's/^ *Type: *\([A-Z]*\).*/\1/p' <<<"$header")
  if [ "$got_machine" != "$machine" ] || [ "$got_class" != ELF64 ] || [ "$got_type" != DYN ]; then
    echo "check-glibc: FAIL $f is $got_class $got_type for '$got_machine', expected ELF64 DYN for '$machine'" >&2
    fail=1
    continue
  fi
  symbols=$(objdump -T "$f")
  versions=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$symbols" | sed 's/^GLIBC_//' | sort -uV)
  [ -n "$versions" ] || { echo "check-glibc: FAIL $f: objdump -T found no GLIBC_ symbol versions" >&2; fail=1; continue; }
  highest=$(tail -n1 <<<"$versions")
  needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  if version_gt "$highest" "$max"; then
    echo "check-glibc: FAIL $f needs GLIBC_$highest > GLIBC_$max, in:" >&2
    for v in $versions; do
      if version_gt "$v" "$max"; then
        grep -F "GLIBC_$v)" <<<"$symbols" | awk -v v="$v" '{print "  " $NF " (GLIBC_" v ")"}' >&2
      fi
    done
    fail=1
    continue
  fi
  echo "check-glibc: ok $f: $got_machine, highest GLIBC_$highest (<= $max), needs: $needed"
done
exit $fail
