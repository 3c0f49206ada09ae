#!/bin/sh
# Installs Debian's fail2ban for the throughput comparison (benches/fail2ban.rs) without
# starting its service: only fail2ban-regex and filter.d/asterisk.conf are used.
set -eu
if command -v fail2ban-regex >/dev/null 2>&1 && [ -f /etc/fail2ban/filter.d/asterisk.conf ]; then
    exit 0
fi
# policy-rc.d 101 = "action forbidden": the package's postinst must not start the server.
policy=/usr/sbin/policy-rc.d
had_policy=no
if [ -e "$policy" ]; then
    had_policy=yes
    cp -p "$policy" "$policy.ampere-bench"
fi
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"
restore_policy() {
    if [ "$had_policy" = yes ]; then mv "$policy.ampere-bench" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends fail2ban python3-systemd >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends fail2ban python3-systemd >/dev/null; }
# In case an init system started it anyway.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet fail2ban 2>/dev/null; then
    systemctl stop fail2ban
fi
command -v fail2ban-regex >/dev/null
