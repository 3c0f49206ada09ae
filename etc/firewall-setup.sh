#!/bin/sh
# Firewall set-up for Ampere, as the README describes it. Run once as root (and make it
# persistent the way your system does: iptables-persistent, /etc/firewall.user, ...).
set -e
chain=${1:-ampere}

# backend = iptables or ipset: a chain of Ampere's own, entered before any
# ESTABLISHED,RELATED accept rule, so that a banned host's established flows are cut too.
for t in iptables ip6tables; do
    $t -w -N "$chain" 2>/dev/null || true
    $t -w -C INPUT -p udp -m multiport --dports 5060,4569 -j "$chain" 2>/dev/null ||
        $t -w -I INPUT -p udp -m multiport --dports 5060,4569 -j "$chain"
    $t -w -C INPUT -p tcp -m multiport --dports 5060,5061 -j "$chain" 2>/dev/null ||
        $t -w -I INPUT -p tcp -m multiport --dports 5060,5061 -j "$chain"
done

# backend = nft needs nothing here: Ampere creates and owns the table `inet $chain`.
