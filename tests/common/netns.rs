//! Network namespaces (tests/netns.rs, benches/latency.rs, benches/restore.rs).

use std::process::Command;

/// Runs a command (no shell); whether it succeeded, and what it printed (stdout, stderr).
pub fn sh(cmd: &[&str]) -> (bool, String) {
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..]);
    let out = {
        let _lock = super::exec_lock();
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    match out.and_then(|child| child.wait_with_output()) {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {}: {e}", cmd[0])),
    }
}

pub fn must(cmd: &[&str]) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "`{}` failed: {out}", cmd.join(" "));
    out
}

/// Creates namespaces `a` and `b` joined by a veth pair (`dev_a` in `a`, `dev_b` in `b`),
/// both ends and loopback up, with these addresses (`addr/len`; IPv6 ones without duplicate
/// address detection, so that they work at once).
pub fn veth_pair(a: &str, b: &str, dev_a: &str, dev_b: &str, addrs_a: &[&str], addrs_b: &[&str]) {
    must(&["ip", "netns", "add", a]);
    must(&["ip", "netns", "add", b]);
    must(&[
        "ip", "link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b,
    ]);
    for (ns, dev, addrs) in [(a, dev_a, addrs_a), (b, dev_b, addrs_b)] {
        for addr in addrs {
            let mut cmd = vec!["ip", "-n", ns, "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                cmd.push("nodad");
            }
            must(&cmd);
        }
        must(&["ip", "-n", ns, "link", "set", dev, "up"]);
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
}

/// What of root and `tools` this machine lacks, for a test that fails loudly without them.
pub fn lacking(tools: &[&str]) -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_default();
    let mut missing = Vec::new();
    if uid != "0" {
        missing.push("root (run `make test` as root)".to_string());
    }
    for t in tools {
        if !["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(t).exists())
        {
            missing.push(format!("`{t}`"));
        }
    }
    missing
}
