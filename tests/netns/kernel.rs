//! What each backend holds in the kernel, asked the way it stores it, and what an admin (or
//! a firewall reload) does to it behind Ampere's back: the one place of the suite that
//! knows the backends apart. A new backend is a row in `BACKENDS` and an arm in each
//! function here.

use std::collections::BTreeSet;
use std::process::Command;

use super::{must, rules, sh};

/// Every backend; the suite runs each scenario once per row.
pub const BACKENDS: [&str; 3] = ["iptables", "ipset", "nft"];

/// Whether the kernel bans `addr` now, asked the way each backend stores it.
pub fn in_kernel(backend: &str, addr: &str) -> bool {
    let v6 = addr.contains(':');
    match backend {
        "iptables" => rules(if v6 { "ip6tables" } else { "iptables" })
            .iter()
            .any(|a| a == addr),
        "ipset" => {
            sh(&[
                "ipset",
                "test",
                if v6 { "ampere-v6" } else { "ampere-v4" },
                addr,
            ])
            .0
        }
        "nft" => {
            let elem = format!("{{ {addr} }}");
            sh(&[
                "nft",
                "get",
                "element",
                "inet",
                "ampere",
                // Single addresses in the hash sets, networks in the interval sets.
                match (v6, addr.contains('/')) {
                    (false, false) => "v4",
                    (false, true) => "net4",
                    (true, false) => "v6",
                    (true, true) => "net6",
                },
                &elem,
            ])
            .0
        }
        _ => unreachable!(),
    }
}

/// Seconds the kernel still keeps `addr` (ipset and nft have per-entry timeouts).
pub fn kernel_remaining(backend: &str, addr: &str) -> f64 {
    let out = match backend {
        "ipset" => must(&["ipset", "list", "ampere-v4"]),
        _ => must(&["nft", "list", "set", "inet", "ampere", "v4"]),
    };
    let after = |key: &str| -> Option<&str> {
        let rest = &out[out.find(addr)?..];
        let v = rest[rest.find(key)? + key.len()..].trim_start();
        Some(&v[..v.find([' ', ',', '\n', '}']).unwrap_or(v.len())])
    };
    let secs = match backend {
        // ipset: `timeout 3` (whole seconds)
        "ipset" => after("timeout ").and_then(|v| v.parse().ok()),
        // nft: `expires 1m2s`, `1s940ms`, `940ms`
        _ => after("expires ").map(nft_duration),
    };
    secs.unwrap_or_else(|| panic!("no timeout for {addr} in:\n{out}"))
}

pub fn nft_duration(v: &str) -> f64 {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().unwrap_or(0.0);
        num.clear();
        total += n * match c {
            'd' => 86_400.0,
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => panic!("unexpected nft duration {v}"),
        };
    }
    total
}

/// How many bans the backend holds at one instant, both families. `ipset save` is no
/// snapshot: the kernel dumps a set in parts, and an entry deleted after its part was dumped
/// is listed beside one added after it. Measured: a set kept at 1,000 by a delete before each
/// add was listed with up to 1,013 entries (and CI once failed on 1,003), while its counter,
/// which `ipset list -t` reads at one instant, never passed 1,000. `iptables -S` reads the
/// table in one piece; nft's listings are read as before (no run has shown the artefact
/// there).
pub fn kernel_ban_count(backend: &str) -> usize {
    if backend != "ipset" {
        return kernel_bans(backend).len();
    }
    ["ampere-v4", "ampere-v6"]
        .iter()
        .map(|set| {
            let terse = must(&["ipset", "list", "-t", set]);
            let n = terse
                .lines()
                .find_map(|l| l.strip_prefix("Number of entries: "))
                .unwrap_or_else(|| panic!("no entry count in `ipset list -t {set}`:\n{terse}"));
            n.trim().parse::<usize>().unwrap()
        })
        .sum()
}

/// Every address the backend holds, both families.
pub fn kernel_bans(backend: &str) -> BTreeSet<String> {
    match backend {
        "iptables" => rules("iptables")
            .into_iter()
            .chain(rules("ip6tables"))
            .collect(),
        "ipset" => ["ampere-v4", "ampere-v6"]
            .iter()
            .flat_map(|set| {
                must(&["ipset", "save", set])
                    .lines()
                    .filter_map(|l| l.strip_prefix("add "))
                    .map(|l| {
                        let net = l.split_whitespace().nth(1).unwrap();
                        net.trim_end_matches("/32")
                            .trim_end_matches("/128")
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        "nft" => ["v4", "net4", "v6", "net6"]
            .iter()
            .flat_map(|set| {
                // A deleted table (a fault the property test injects) holds nothing.
                let (_, out) = sh(&["nft", "list", "set", "inet", "ampere", set]);
                let Some(start) = out.find("elements = {") else {
                    return Vec::new();
                };
                let body = &out[start + 12..];
                let body = &body[..body.find('}').unwrap()];
                body.split(',')
                    .filter_map(|item| item.split_whitespace().next().map(String::from))
                    .collect()
            })
            .collect(),
        _ => unreachable!(),
    }
}

/// What an admin (or a firewall reload) does to Ampere's bans behind its back.
pub fn break_firewall(backend: &str) {
    match backend {
        "iptables" => must(&["iptables", "-w", "-F", "ampere"]),
        "ipset" => must(&["ipset", "flush", "ampere-v4"]),
        _ => must(&["nft", "delete", "table", "inet", "ampere"]),
    };
}

/// Empties Ampere's chain or sets, keeping them.
pub fn empty_firewall(backend: &str) {
    match backend {
        "iptables" => must(&["iptables", "-w", "-F", "ampere"]),
        "ipset" => must(&["ipset", "flush", "ampere-v4"]),
        _ => must(&["nft", "flush", "set", "inet", "ampere", "v4"]),
    };
}

/// Removes the limit's rules behind Ampere's back, as `iptables -F` or a firewall reload would.
pub fn drop_limit(backend: &str) {
    if backend == "nft" {
        must(&["nft", "flush", "chain", "inet", "ampere", "guard"]);
    } else {
        must(&["iptables", "-w", "-F", "ampere"]);
        must(&["ip6tables", "-w", "-F", "ampere"]);
    }
}

pub fn limit_in_kernel(backend: &str) -> bool {
    if backend == "nft" {
        let out = Command::new("nft")
            .args(["list", "chain", "inet", "ampere", "guard"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("limit rate over")
    } else {
        ["iptables", "ip6tables"]
            .iter()
            .all(|t| must(&[t, "-w", "-S", "ampere"]).contains("-m hashlimit"))
    }
}

/// A rule above the bans that lets everything through, behind Ampere's back.
pub fn insert_stray(backend: &str) {
    if backend == "nft" {
        must(&["nft", "insert", "rule", "inet", "ampere", "input", "accept"]);
    } else {
        must(&["iptables", "-w", "-I", "ampere", "1", "-j", "RETURN"]);
    }
}

/// Ampere's rules flushed, its sets intact (iptables: its chain, the bans with it).
pub fn flush_rules(backend: &str) {
    if backend == "nft" {
        must(&["nft", "flush", "chain", "inet", "ampere", "input"]);
    } else {
        must(&["iptables", "-w", "-F", "ampere"]);
    }
}

/// Whether Ampere's rules are as it writes them: no stray above the bans, the drop rules
/// (nft) and the sets' match rules (ipset) in place.
pub fn rules_intact(backend: &str) -> bool {
    match backend {
        "nft" => {
            let Ok(out) = Command::new("nft")
                .args(["list", "chain", "inet", "ampere", "input"])
                .output()
            else {
                return false;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            lines.contains(&"jump guard")
                && ["@v4 drop", "@net4 drop", "@v6 drop", "@net6 drop"]
                    .iter()
                    .all(|d| lines.iter().filter(|l| l.ends_with(d)).count() == 1)
                && !lines.contains(&"accept")
        }
        _ => ["iptables", "ip6tables"].iter().all(|t| {
            let rules = must(&[t, "-w", "-S", "ampere"]);
            let set = if *t == "iptables" {
                "ampere-v4"
            } else {
                "ampere-v6"
            };
            !rules.lines().any(|l| l == "-A ampere -j RETURN")
                && (backend != "ipset"
                    || rules.contains(&format!("-A ampere -m set --match-set {set} src -j DROP")))
        }),
    }
}
