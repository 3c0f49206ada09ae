#!/usr/bin/env bash
# pkg/build-ipk.sh TRIPLE — target/ampere_<version>-1_<opkg arch>.ipk from the static binary
# of `make cross TARGET=TRIPLE`, laid out as OpenWrt's ipkg-build does: a gzipped tar of
# debian-binary, control.tar.gz and data.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=${1:?usage: pkg/build-ipk.sh TRIPLE}
bin=target/$triple/size/ampere
[ -x "$bin" ] || { echo "$bin missing: run make cross TARGET=$triple" >&2; exit 2; }
case $triple in
x86_64-*) arch=x86_64 ;;
aarch64-*) arch=aarch64_cortex-a53 ;;
armv7-*) arch=arm_cortex-a7_neon-vfpv4 ;;
arm-*) arch=arm_arm1176jzf-s_vfp ;;
mipsel-*) arch=mipsel_24kc ;;
mips-*) arch=mips_24kc ;;
*) echo "no opkg architecture for $triple" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1

work=target/ipk/$triple
rm -rf "$work" && mkdir -p "$work/data" "$work/control"
install -D -m 0755 "$bin" "$work/data/usr/sbin/ampere"
install -D -m 0600 cross/openwrt/ampere.cfg "$work/data/etc/ampere/ampere.cfg"
install -D -m 0755 init.d/ampere.openwrt "$work/data/etc/init.d/ampere"
size=$(du -sb "$work/data" | cut -f1)
cat > "$work/control/control" <<CTRL
Package: ampere
Version: $version
Depends: nftables
Source: cross/openwrt/ampere
SourceName: ampere
License: GPL-2.0-or-later
Section: net
Architecture: $arch
Installed-Size: $size
Maintainer: Ampere developers <ampere@example.org>
Description:  Active network filter for Asterisk: reads AMI security events and bans
 brute-forcing hosts in the firewall; bans are kept in SQLite and restored at boot.
CTRL
echo /etc/ampere/ampere.cfg > "$work/control/conffiles"
cat > "$work/control/postinst" <<'SH'
#!/bin/sh
[ -n "$IPKG_INSTROOT" ] || { mkdir -p /var/lib/ampere; /etc/init.d/ampere enable; }
exit 0
SH
cat > "$work/control/prerm" <<'SH'
#!/bin/sh
[ -n "$IPKG_INSTROOT" ] || { /etc/init.d/ampere stop; /etc/init.d/ampere disable; }
exit 0
SH
chmod 0755 "$work/control/postinst" "$work/control/prerm"
echo 2.0 > "$work/debian-binary"
tarz() { tar --numeric-owner --owner=0 --group=0 --sort=name -C "$1" -czf "$2" .; }
tarz "$work/data" "$work/data.tar.gz"
tarz "$work/control" "$work/control.tar.gz"
out=target/ampere_${version}_${arch}.ipk
tar --numeric-owner --owner=0 --group=0 -C "$work" -czf "$out" ./debian-binary ./control.tar.gz ./data.tar.gz
echo "$out"
