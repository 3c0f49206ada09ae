#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] — runs each fuzz target for SECONDS (default 60), seeded with
# fuzz/seeds/<target> (real captures, config files, blocklists). Needs nightly and
# cargo-fuzz (cargo install cargo-fuzz --version 0.13.1 --locked). A crash fails the run and
# leaves its input in fuzz/artifacts/<target>/; the full output is in fuzz/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
for t in ami_framer remote_address config addresses lapi_stream log_lines; do
    mkdir -p "fuzz/corpus/$t"
    log=fuzz/$t.log
    echo "== fuzz $t for ${secs}s"
    if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz $t FAILED (input in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE' "$log" || true
done
