#!/bin/sh
# The system packages `make test` needs (real iptables, ipset, nft and namespaces; fail2ban-regex
# for the benchmark's smoke round; CrowdSec's Local API for tests/crowdsec.rs), installed when
# missing. Idempotent and quiet when all is
# there; `make test` and `.ci/run` both call it. Not root: prints the command to run and fails.
set -eu
cd "$(dirname "$0")/.."
PACKAGES="iptables ipset nftables iproute2 conntrack util-linux bsdutils procps make gcc libc6-dev"
missing=""
for tool in iptables ip6tables ipset nft ip conntrack unshare logger pgrep make gcc; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
f2b=yes
if ! command -v fail2ban-regex >/dev/null 2>&1 || [ ! -f /etc/fail2ban/filter.d/asterisk.conf ]; then
    f2b=no
    missing="$missing fail2ban-regex"
fi
cs=yes
if ! command -v crowdsec >/dev/null 2>&1 || ! command -v cscli >/dev/null 2>&1; then
    cs=no
    missing="$missing crowdsec"
fi
if [ -z "$missing" ] && [ "$f2b" = yes ] && [ "$cs" = yes ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "the tests need:$missing" >&2
    echo "as root, run:  apt-get update && apt-get install -y $PACKAGES && benches/install-fail2ban.sh && tests/install-crowdsec.sh" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$(echo "$missing" | sed 's/ fail2ban-regex//; s/ crowdsec//')" ]; then
    echo "installing test packages (missing:$missing)" >&2
    apt-get update -qq
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
if [ "$f2b" = no ]; then
    echo "installing fail2ban-regex (its service stays off)" >&2
    sh benches/install-fail2ban.sh
fi
if [ "$cs" = no ]; then
    echo "installing crowdsec offline (its service stays off)" >&2
    sh tests/install-crowdsec.sh
fi
