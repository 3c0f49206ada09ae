#!/usr/bin/env bash
# Installs what the musl cross builds need, at pinned versions, and nothing else:
#   - zig (C compiler, linker and musl for every target) and cargo-zigbuild, from PyPI, in a
#     venv under $AMPERE_CROSS_HOME (default ~/.cache/ampere-cross);
#   - Rust: the x86_64/aarch64 musl std for stable; nightly with rust-src for the targets
#     whose std is built from source (ARMv6/ARMv7/MIPS);
#   - Debian's qemu-user-static (runs the binaries and tests) and `file`.
# Run it once on a fresh machine (CI does). `make cross` only uses what is installed.
set -euo pipefail

ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.0
home=${AMPERE_CROSS_HOME:-$HOME/.cache/ampere-cross}

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v qemu-arm-static >/dev/null || ! command -v file >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends qemu-user-static file python3-venv >/dev/null
    fi
fi

if [ ! -x "$home/venv/bin/cargo-zigbuild" ] ||
   ! "$home/venv/bin/pip" show ziglang 2>/dev/null | grep -q "^Version: $ZIGLANG_VERSION$"; then
    python3 -m venv "$home/venv"
    "$home/venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
fi

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add rust-src --toolchain nightly >/dev/null

echo "cross tools ready in $home (zig $ZIGLANG_VERSION, cargo-zigbuild $ZIGBUILD_VERSION)"
