#!/usr/bin/env bash
# pkg/build-deb.sh [TRIPLE] — builds target/ampere_<version>_<arch>.deb.
# Without TRIPLE: the host's native `nice` build (Depends from dpkg-shlibdeps).
# With TRIPLE: the static musl binary of `make cross TARGET=TRIPLE` (no library Depends).
set -euo pipefail
cd "$(dirname "$0")/.."

triple=${1:-}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
if [ -z "$triple" ]; then
    cargo build --locked --profile nice
    bin=target/nice/ampere
    arch=$(dpkg --print-architecture)
else
    bin=target/$triple/size/ampere
    [ -x "$bin" ] || { echo "$bin missing: run make cross TARGET=$triple" >&2; exit 2; }
    case $triple in
    x86_64-*) arch=amd64 ;;
    aarch64-*) arch=arm64 ;;
    armv7-*) arch=armhf ;;
    arm-*) arch=armel ;;
    mipsel-*) arch=mipsel ;;
    mips-*) arch=mips ;;
    *) echo "no Debian architecture for $triple" >&2; exit 2 ;;
    esac
fi

root=target/deb/root
rm -rf target/deb && mkdir -p "$root/DEBIAN"
install -D -m 0755 "$bin" "$root/usr/sbin/ampere"
install -D -m 0644 etc/ampere.cfg "$root/etc/ampere/ampere.cfg"
install -D -m 0755 init.d/ampere "$root/etc/init.d/ampere"
install -D -m 0644 etc/ampere.default "$root/etc/default/ampere"
install -D -m 0644 etc/ampere.logrotate "$root/etc/logrotate.d/ampere"
install -D -m 0644 etc/ampere.service "$root/usr/lib/systemd/system/ampere.service"
install -D -m 0644 doc/ampere.8 "$root/usr/share/man/man8/ampere.8"
gzip -9n "$root/usr/share/man/man8/ampere.8"
doc=$root/usr/share/doc/ampere
install -D -m 0644 pkg/copyright "$doc/copyright"
install -D -m 0644 pkg/changelog "$doc/changelog"
gzip -9n "$doc/changelog"
install -D -m 0644 etc/manager.conf.ampere "$doc/examples/manager.conf.ampere"
install -D -m 0644 etc/firewall-setup.sh "$doc/examples/firewall-setup.sh"
install -D -m 0644 etc/sample-attack.ami "$doc/examples/sample-attack.ami"

depends="iptables | nftables"
if [ -z "$triple" ]; then
    mkdir -p target/deb/debian && : > target/deb/debian/control
    libs=$(cd target/deb && dpkg-shlibdeps -O "root/usr/sbin/ampere" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    [ -n "$libs" ] && depends="$libs, $depends"
    rm -rf target/deb/debian
fi
for f in postinst prerm postrm; do install -m 0755 "pkg/$f" "$root/DEBIAN/$f"; done
cat > "$root/DEBIAN/conffiles" <<CONF
/etc/ampere/ampere.cfg
/etc/default/ampere
/etc/init.d/ampere
/etc/logrotate.d/ampere
CONF
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CTRL
Package: ampere
Version: $version
Architecture: $arch
Maintainer: Ampere developers <ampere@example.org>
Installed-Size: $size
Depends: $depends
Recommends: ipset, logrotate
Suggests: asterisk
Section: net
Priority: optional
Homepage: https://example.org/ampere
Description: active network filter for the Asterisk PBX
 Ampere reads Asterisk's AMI security events (failed passwords, unknown
 accounts, ACL failures, ...), keeps a penalty per remote host and bans
 brute-forcing hosts in iptables, ipset or nftables within milliseconds.
 Bans are stored in SQLite and restored at start; trusted networks are
 never banned.
CTRL
chmod 0640 "$root/etc/ampere/ampere.cfg"
out=target/ampere_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
