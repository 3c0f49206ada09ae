#!/bin/sh
# `make bench`: every benchmark in turn (as root: the latency and restore ones use network
# namespaces). Each prints its figures as Markdown tables; together, headed by the date and
# the machine, they also go to target/bench-results.md, the source of README's table.
set -eu
cd "$(dirname "$0")/.."
benches/install-fail2ban.sh
cargo build --release
mkdir -p target
out=target/bench-results.md
{
    echo "# Ampere benchmarks, $(date -u +%Y-%m-%d)"
    echo
    echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%d MiB", $2/1024}' /proc/meminfo), Linux $(uname -r)"
    echo "- tools: $(iptables -V); $(ipset -v | head -1); $(nft -v); $(fail2ban-regex --version)"
    echo "- ampere: $(target/release/ampere -V) (release build)"
    for b in fail2ban latency cpu memory restore; do
        echo
        echo "## $b"
        echo
        # cargo's own progress lines go to stderr, only the bench's report is kept.
        cargo bench -q --bench "$b" 2>/dev/null
    done
} | tee "$out"
echo
echo "written to $out"
