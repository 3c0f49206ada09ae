#!/usr/bin/env bash
# pkg/check-ipk.sh FILE.ipk TRIPLE — unpacks an ipk and checks what opkg needs: the outer
# layout, the control fields, conffiles, the procd init script, and that the binary is the
# static build for the target's architecture.
set -euo pipefail
ipk=$1 triple=$2
cd "$(dirname "$0")/.."
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "check-ipk: $*" >&2; exit 1; }

tar -xzf "$ipk" -C "$t"
[ "$(tar -tzf "$ipk" | sed 's|^\./||' | sort | xargs)" = "control.tar.gz data.tar.gz debian-binary" ] ||
    fail "outer archive must hold exactly debian-binary, control.tar.gz, data.tar.gz"
[ "$(cat "$t/debian-binary")" = 2.0 ] || fail "debian-binary is not 2.0"
mkdir "$t/c" "$t/d"
tar -xzf "$t/control.tar.gz" -C "$t/c"
tar -xzf "$t/data.tar.gz" -C "$t/d"
for f in Package Version Architecture Maintainer Description Installed-Size Depends; do
    grep -q "^$f: ." "$t/c/control" || fail "control lacks $f"
done
grep -qx "Package: ampere" "$t/c/control" || fail "wrong Package"
grep -qx "/etc/ampere/ampere.cfg" "$t/c/conffiles" || fail "conffiles lacks ampere.cfg"
[ -x "$t/c/postinst" ] || fail "no executable postinst"
grep -q "/var/lib/ampere" "$t/c/postinst" || fail "postinst does not create /var/lib/ampere"
[ -x "$t/d/etc/init.d/ampere" ] || fail "no executable init script"
grep -q "^USE_PROCD=1" "$t/d/etc/init.d/ampere" || fail "init script is not a procd one"
grep -q "^db = /etc/ampere/ampere.db" "$t/d/etc/ampere/ampere.cfg" || fail "database not on flash"
grep -qE "^backend = nft([[:space:]]*;.*)?$" "$t/d/etc/ampere/ampere.cfg" || fail "OpenWrt's config does not use nft (fw4 has no iptables)"
grep -qx "Depends: nftables" "$t/c/control" || fail "the package must depend on nftables, not iptables"
want=$(awk -v t="$triple" '$1 == t { $1=$2=$3=$4=$5=""; sub(/^ +/, ""); print }' cross/targets)
desc=$(file -b "$t/d/usr/sbin/ampere")
grep -q "statically linked" <<<"$desc" || fail "binary not static: $desc"
grep -qF "$want" <<<"$desc" || fail "binary is not $want: $desc"
cmp -s "$t/d/usr/sbin/ampere" "target/$triple/size/ampere" || fail "binary differs from target/$triple/size/ampere"
echo "check-ipk: $ipk ok ($(grep '^Architecture' "$t/c/control"), $desc)"
