#!/bin/sh
# Runs the namespace and liveness suites while every core is kept busy by a CPU hog at the
# tests' own priority (nice 0) and by a compile of a large C project (SQLite's amalgamation,
# over and over, one compiler per core), as on a CI machine shared with builds. Timing
# bounds that are about the machine must hold here; bounds about the product are not
# loosened for it. AMPERE_LOAD_RUNS (1) runs the suites that many times in a row.
set -eu
cd "$(dirname "$0")/.."
cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
pids=""
stop_hogs() {
    # The compile loops' shells first, then whatever compiler each had running.
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    pkill -f "cc -O2 -c .*sqlite3.c" 2>/dev/null || true
    [ -z "${out:-}" ] || rm -rf "$out"
}
trap stop_hogs EXIT INT TERM
# Build first, so that the hog loads the tests and not the compiler. The binary under test
# is the release build, as shipped: a debug build is ten times slower per event, and under a
# hog its stalls are the build's, not the product's (the slow-consumer test was dropped at
# 77-100 ms with it, and waited at most 24 ms with the release build).
cargo build --release
cargo test --test netns --test liveness --no-run
AMPERE_TEST_BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/release/ampere"
export AMPERE_TEST_BIN
i=0
while [ "$i" -lt "$cores" ]; do
    sh -c 'while :; do :; done' &
    pids="$pids $!"
    i=$((i + 1))
done
# The amalgamation libsqlite3-sys brings (fetched by the build above): 9 MB of C.
src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*libsqlite3-sys*/sqlite3/sqlite3.c' 2>/dev/null | head -n 1)
if [ -z "$src" ]; then
    echo "under-load: no sqlite3.c under ${CARGO_HOME:-$HOME/.cargo}/registry/src to compile" >&2
    exit 1
fi
out=$(mktemp -d)
i=0
while [ "$i" -lt "$cores" ]; do
    sh -c "while :; do cc -O2 -c '$src' -o '$out/load$i.o'; done" >/dev/null 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
echo "under-load: $cores busy loops and $cores compiles of $src running (pids$pids)"
run=1
while [ "$run" -le "${AMPERE_LOAD_RUNS:-1}" ]; do
    echo "under-load: run $run of ${AMPERE_LOAD_RUNS:-1}"
    cargo test --test netns --test liveness --no-fail-fast
    run=$((run + 1))
done
