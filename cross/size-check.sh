#!/usr/bin/env bash
# Prints the size of every cross build present and fails when a budgeted one is over:
# armv7 (most ARM routers, Pi 2/3 32-bit) <= 1.5 MiB, mips <= 2.5 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

budget() {
    case $1 in
    armv7-unknown-linux-musleabihf) echo 1572864 ;;
    mips-unknown-linux-musl) echo 2621440 ;;
    *) echo "" ;;
    esac
}

fail=0
printf '%-32s %10s %8s  %s\n' target bytes KiB budget
while read -r t _; do
    case $t in '' | '#'*) continue ;; esac
    bin=target/$t/size/ampere
    [ -f "$bin" ] || continue
    size=$(stat -c %s "$bin")
    b=$(budget "$t")
    verdict=""
    if [ -n "$b" ]; then
        if [ "$size" -le "$b" ]; then verdict="<= $((b / 1024)) KiB ok"; else verdict="OVER $((b / 1024)) KiB"; fail=1; fi
    fi
    printf '%-32s %10d %8d  %s\n' "$t" "$size" $((size / 1024)) "$verdict"
done < cross/targets
for t in armv7-unknown-linux-musleabihf mips-unknown-linux-musl; do
    [ -f "target/$t/size/ampere" ] || { echo "missing target/$t/size/ampere: run make cross TARGET=$t" >&2; fail=1; }
done
exit $fail
