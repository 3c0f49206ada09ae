#!/usr/bin/env bash
# cross/build.sh TRIPLE [test [TEST ARGS...]]
#   build: a static, stripped binary at target/TRIPLE/size/ampere (profile `size`), checked
#          with `file` for static linking and the right architecture.
#   test:  `cargo test` for TRIPLE, every test binary run under qemu-user; the tests' own
#          children (the ampere binary) go through AMPERE_TEST_RUNNER, the same qemu.
# Needs the tools of cross/install-tools.sh; installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=${1:?usage: cross/build.sh TRIPLE [test [ARGS...]]}
mode=${2:-build}
shift $(( $# >= 2 ? 2 : 1 ))

row=$(grep -E "^${triple}[[:space:]]" cross/targets) || {
    echo "unknown target $triple; known: $(grep -Ev '^#' cross/targets | awk '{print $1}' | xargs)" >&2
    exit 2
}
read -r _ toolchain build_std qemu cpu file_says <<<"$row"
file_says=$(awk '{ $1=$2=$3=$4=$5=""; sub(/^ +/, ""); print }' <<<"$row")

home=${AMPERE_CROSS_HOME:-$HOME/.cache/ampere-cross}
[ -x "$home/venv/bin/cargo-zigbuild" ] || { echo "cross tools missing: run cross/install-tools.sh" >&2; exit 2; }
export PATH="$home/venv/bin:$PATH"

upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
# link-self-contained=no: zig provides crt1.o and libc, not rustc's bundled copies.
flags="-C link-self-contained=no"
# The keys' and event kinds' documentation stays out of the router's binary (about 14 KB):
# the documents are written from a normal build, and the daemon never prints it.
flags="$flags --cfg ampere_lean"
# MIPS: position-independent code loads every call's address through the GOT; the binary
# is static at a fixed address anyway, and static code is 138 KB smaller (doc/building.md).
case $triple in mips*) flags="$flags -C target-feature=+crt-static -C relocation-model=static" ;; esac
export "CARGO_TARGET_${upper}_RUSTFLAGS=$flags"
export "CARGO_TARGET_${upper}_RUNNER=$qemu -cpu $cpu"
export AMPERE_TEST_RUNNER="$qemu -cpu $cpu"
export PCRE2_SYS_STATIC=1
# PCRE2 without its Unicode tables: see cross/pcre2-no-unicode.h.
export "CFLAGS_${triple//-/_}=-include $PWD/cross/pcre2-no-unicode.h"
# SQLite without what Ampere never uses (full-text search, R-Tree, JSON, extensions, ...).
export LIBSQLITE3_FLAGS="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 \
 -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_JSON1 -USQLITE_ENABLE_STAT4 -USQLITE_ENABLE_DBSTAT_VTAB \
 -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_LOAD_EXTENSION -DSQLITE_OMIT_LOAD_EXTENSION \
 -DSQLITE_OMIT_JSON -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_PROGRESS_CALLBACK \
 -DSQLITE_OMIT_DECLTYPE -DSQLITE_OMIT_AUTHORIZATION -DSQLITE_OMIT_COMPLETE -DSQLITE_OMIT_GET_TABLE \
 -DSQLITE_OMIT_TCL_VARIABLE -DSQLITE_OMIT_UTF16 -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_DQS=0 \
 -DSQLITE_OMIT_DATETIME_FUNCS -USQLITE_SOUNDEX -DSQLITE_OMIT_COMPILEOPTION_DIAGS -DSQLITE_OMIT_INTROSPECTION_PRAGMAS \
 -DSQLITE_OMIT_TRACE -DSQLITE_MAX_MMAP_SIZE=0 -DSQLITE_OMIT_INCRBLOB -DSQLITE_OMIT_LIKE_OPTIMIZATION \
 -DSQLITE_OMIT_BETWEEN_OPTIMIZATION -DSQLITE_OMIT_OR_OPTIMIZATION -DSQLITE_OMIT_XFER_OPT \
 -DSQLITE_OMIT_AUTOMATIC_INDEX -DSQLITE_UNTESTABLE"

std=()
# shellcheck disable=SC2054 # the commas belong to the flags' values
[ "$build_std" = yes ] && std=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)

case $mode in
build)
    # The nightly targets (std from source) also leave out the file and line of every
    # panic site (panics abort, and still say what went wrong): 23 KB on armv7 and mips.
    [ "$build_std" = yes ] && export "CARGO_TARGET_${upper}_RUSTFLAGS=$flags -Zlocation-detail=none"
    cargo "+$toolchain" zigbuild --locked --target "$triple" --profile size "${std[@]}"
    bin=target/$triple/size/ampere
    desc=$(file -b "$bin")
    echo "$bin: $desc"
    grep -q "statically linked" <<<"$desc" || { echo "$bin is not statically linked" >&2; exit 1; }
    grep -qF "$file_says" <<<"$desc" || { echo "$bin is not $file_says" >&2; exit 1; }
    echo "size: $(stat -c %s "$bin") bytes"
    ;;
test)
    RUSTUP_TOOLCHAIN=$toolchain cargo-zigbuild test --locked --target "$triple" "${std[@]}" "$@"
    ;;
*)
    echo "unknown mode $mode (build or test)" >&2
    exit 2
    ;;
esac
