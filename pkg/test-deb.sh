#!/usr/bin/env bash
# pkg/test-deb.sh FILE.deb — installs the package, runs it through its SysV init script in a
# network namespace of its own (its own chain, a test AMI server replaying a real capture),
# checks status, a ban in the kernel, reload and stop, then purges it and checks that no
# process and no file is left. As root; cleans up on failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$1
ns=ampdeb$$
replay=""

cleanup() {
    if [ -n "$replay" ]; then kill "$replay" 2>/dev/null || true; fi
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    dpkg --purge ampere >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "test-deb: $*" >&2; [ -f /var/log/ampere.log ] && tail -20 /var/log/ampere.log >&2; exit 1; }
in_ns() { ip netns exec "$ns" "$@"; }

cargo build --quiet --example ami_replay
dpkg -i "$deb" >/dev/null
for f in /usr/sbin/ampere /etc/ampere/ampere.cfg /var/lib/ampere /etc/init.d/ampere; do
    [ -e "$f" ] || fail "install incomplete: no $f"
done
man -w ampere >/dev/null || fail "man page not installed"

ip netns add "$ns"
in_ns ip link set lo up

# Start tells the truth: without the chain it fails, with the daemon's own error on the
# terminal, and nothing runs; a config typo is one clean error.
if out=$(in_ns /etc/init.d/ampere start 2>&1); then fail "start succeeded without the chain: $out"; fi
echo "$out" | grep -q 'chain .ampere. not usable' || fail "start did not show the daemon's error: $out"
if in_ns /etc/init.d/ampere status >/dev/null; then fail "status: running after a failed start"; fi
echo 'loyalty = lots' >> /etc/ampere/ampere.cfg
if out=$(in_ns /etc/init.d/ampere start 2>&1); then fail "start succeeded with a bad config: $out"; fi
[ "$(echo "$out" | grep -c 'ampere.cfg:[0-9]*: loyalty')" = 1 ] || fail "the config error is not shown once: $out"
sed -i '/^loyalty = lots$/d' /etc/ampere/ampere.cfg

for t in iptables ip6tables; do in_ns "$t" -w -N ampere; done

# The test AMI server inside the namespace, on its loopback.
exec 3< <(ip netns exec "$ns" target/debug/examples/ami_replay tests/fixtures/ami/pjsip-svmap.ami)
replay=$!
read -r _ port <&3
printf 'pass = 123\nport = %s\nping_interval = 1h\n' "$port" >> /etc/ampere/ampere.cfg

in_ns /etc/init.d/ampere start || fail "start failed"
in_ns /etc/init.d/ampere status >/dev/null || fail "status: not running after start"
for _ in $(seq 100); do
    in_ns iptables -w -S ampere | grep -q -- "-s 203.0.113.2/32 -j DROP" && break
    sleep 0.1
done
in_ns iptables -w -S ampere | grep -q -- "-s 203.0.113.2/32 -j DROP" || fail "no ban in the kernel"
ampere -l > /tmp/ampere-list.$$ || fail "ampere -l failed"
grep -q "^203.0.113.2 " /tmp/ampere-list.$$ || fail "ban not in the database"
rm -f /tmp/ampere-list.$$
in_ns /etc/init.d/ampere reload || fail "reload failed"
for _ in $(seq 50); do grep -q "config reloaded" /var/log/ampere.log && break; sleep 0.1; done
grep -q "config reloaded" /var/log/ampere.log || fail "reload not seen in the log"
in_ns /etc/init.d/ampere stop || fail "stop failed"
if in_ns /etc/init.d/ampere status >/dev/null; then fail "status: still running after stop"; fi
in_ns iptables -w -S ampere | grep -q -- "-s 203.0.113.2/32" || fail "the ban did not outlive the daemon"

# Each action's exit status is the truth: a reload with no daemon fails (LSB 7); with
# another Ampere on the same config (started by hand), `start` fails (the daemon it
# launched died, whoever answers) and `stop` fails (Ampere still runs).
set +e
in_ns /etc/init.d/ampere reload >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 7 ] || fail "reload with no daemon exited $rc"
ip netns exec "$ns" /usr/sbin/ampere -c /etc/ampere/ampere.cfg -o /var/log/ampere-other.log &
other=$!
for _ in $(seq 100); do in_ns ampere status >/dev/null 2>&1 && break; sleep 0.1; done
in_ns ampere status >/dev/null 2>&1 || fail "the hand-started Ampere does not answer"
if out=$(in_ns /etc/init.d/ampere start 2>&1); then fail "start succeeded though its daemon died: $out"; fi
echo "$out" | grep -q "another Ampere is running" || fail "start did not say why: $out"
if out=$(in_ns /etc/init.d/ampere stop 2>&1); then fail "stop succeeded while Ampere runs: $out"; fi
echo "$out" | grep -q "pid $other" || fail "stop did not name the process: $out"
kill "$other"
wait "$other" || true
rm -f /var/log/ampere-other.log

dpkg --purge ampere >/dev/null
# (other ampere processes, of the test suite, may run meanwhile: only the installed one counts)
pgrep -f '^/usr/sbin/ampere' >/dev/null && fail "a process is left"
for f in /usr/sbin/ampere /etc/ampere /etc/init.d/ampere /etc/default/ampere /etc/logrotate.d/ampere \
    /var/lib/ampere /var/log/ampere.log /usr/share/man/man8/ampere.8.gz /usr/share/doc/ampere \
    /usr/lib/systemd/system/ampere.service; do
    [ -e "$f" ] && fail "$f is left after purge"
done
ls /etc/rc?.d/*ampere >/dev/null 2>&1 && fail "rc links are left after purge"
echo "test-deb: install, failed starts shown, start, status, ban, reload, stop, exit statuses with no daemon and with another one, purge ok"
