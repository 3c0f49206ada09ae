//! Throughput against fail2ban: the same N security events, as an AMI stream for
//! `ampere --replay` and as the matching Asterisk security-log lines for `fail2ban-regex`
//! with Debian's stock `filter.d/asterisk.conf`. Events/s of each, the ratio, and each
//! one's peak RSS (VmHWM, sampled every 5 ms while it runs). The files are synced to disk
//! before either runs; Ampere's figure is the best of three runs, fail2ban's a single run.
//!
//! The events are the captures' own messages (one template per kind, taken from
//! tests/fixtures/ami), from many addresses (one in four IPv6), in four mixes (`Mix`): a
//! scan (ChallengeSent before most failures, wrong passwords, unknown accounts, ACL
//! failures, a successful login now and then, about 20 events per address), challenge
//! pairs (each new attacker sends three ChallengeSent + ChallengeResponseFailed pairs),
//! one-off addresses (every event from an address never seen before: the penalty table's
//! worst case) and a flood (99 of 100 events from one host).
//!
//!   make bench-fail2ban       (cargo bench --bench fail2ban: every mix, 100k to 1M events)
//!
//! fail2ban comes from apt (benches/install-fail2ban.sh; its service is never started).
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a 2,000-event smoke
//! round that checks both tools saw every event.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const FILTER: &str = "/etc/fail2ban/filter.d/asterisk.conf";
/// The kinds fail2ban's asterisk filter matches (its `SecurityEvent=` failregex).
const F2B_KINDS: [&str; 4] = [
    "FailedACL",
    "InvalidAccountID",
    "ChallengeResponseFailed",
    "InvalidPassword",
];
/// One scan step after another; SuccessfulAuth is added every 100th event.
const MIX: [&str; 10] = [
    "ChallengeSent",
    "ChallengeResponseFailed",
    "ChallengeSent",
    "ChallengeResponseFailed",
    "InvalidAccountID",
    "ChallengeSent",
    "InvalidPassword",
    "InvalidAccountID",
    "FailedACL",
    "ChallengeResponseFailed",
];

#[derive(Clone, Copy, Debug)]
enum Mix {
    Scan,
    Pairs,
    OneOff,
    Flood,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Scan => "scan",
            Mix::Pairs => "challenge pairs",
            Mix::OneOff => "one-off addresses",
            Mix::Flood => "one flooding host",
        }
    }

    /// For `AMPERE_BENCH_MIX` and file names.
    fn tag(self) -> &'static str {
        match self {
            Mix::Scan => "scan",
            Mix::Pairs => "pairs",
            Mix::OneOff => "one-off",
            Mix::Flood => "flood",
        }
    }

    /// The kind of event `i` of `n` and the number of its address.
    fn event(self, i: u64, n: u64) -> (&'static str, u64) {
        let scan_kind = if i % 100 == 99 {
            "SuccessfulAuth"
        } else {
            MIX[(i % 10) as usize]
        };
        match self {
            // About 20 events per address, interleaved as concurrent scanners are.
            Mix::Scan => (scan_kind, i.wrapping_mul(7919) % (n / 20).max(1)),
            Mix::Pairs => (
                if i % 2 == 0 {
                    "ChallengeSent"
                } else {
                    "ChallengeResponseFailed"
                },
                i / 6,
            ),
            Mix::OneOff => (scan_kind, i),
            Mix::Flood => (scan_kind, if i % 100 == 50 { 1 + i / 100 } else { 0 }),
        }
    }
}

/// The first message of each kind (PJSIP where there is one) in the captures, as header pairs.
fn templates() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for file in [
        "eventfilter.ami",
        "pjsip-acl.ami",
        "pjsip-flood.ami",
        "pjsip-svmap.ami",
        "timestampevents.ami",
        "pjsip-success.ami",
    ] {
        for msg in fixture_events(file, &[]) {
            let text = String::from_utf8(msg).unwrap();
            let headers: Vec<(String, String)> = text
                .split("\r\n")
                .filter_map(|l| {
                    l.split_once(": ")
                        .or_else(|| l.strip_suffix(':').map(|n| (n, "")))
                })
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            let (Some(kind), Some(service), Some(remote)) =
                (get("Event"), get("Service"), get("RemoteAddress"))
            else {
                continue;
            };
            // PJSIP where the captures have it; InvalidPassword only comes from AMI there.
            let better = service == "PJSIP" && out.get(kind).is_some_and(|(s, _)| s != "PJSIP");
            if remote.starts_with("IPV4/") && (better || !out.contains_key(kind)) {
                out.insert(kind.to_string(), (service.to_string(), headers.clone()));
            }
        }
    }
    for k in MIX.iter().chain(&["SuccessfulAuth"]) {
        assert!(out.contains_key(*k), "no {k} in the captures");
    }
    out.into_iter().map(|(k, (_, h))| (k, h)).collect()
}

/// Writes `n` events of `mix` to `ami` (an AMI stream) and `log` (Asterisk's security log);
/// returns how many of them fail2ban's filter should match.
fn generate(n: u64, mix: Mix, ami: &Path, log: &Path) -> u64 {
    let t = templates();
    let mut a = BufWriter::new(File::create(ami).unwrap());
    let mut l = BufWriter::new(File::create(log).unwrap());
    a.write_all(b"Asterisk Call Manager/11.0.0\r\n").unwrap();
    let mut matched = 0;
    for i in 0..n {
        let (kind, k) = mix.event(i, n);
        let mut line = format!(
            "[2026-11-23 08:41:22] SECURITY[1234] res_security_log.c: SecurityEvent=\"{kind}\""
        );
        for (name, value) in &t[kind] {
            let addr;
            let value = if name == "RemoteAddress" {
                let transport = value.split('/').nth(1).unwrap_or("UDP");
                addr = remote(k, true).replace("/UDP/", &format!("/{transport}/"));
                addr.as_str()
            } else {
                value.as_str()
            };
            write!(a, "{name}: {value}\r\n").unwrap();
            if name != "Event" && name != "Privilege" {
                write!(line, ",{name}=\"{value}\"").unwrap();
            }
        }
        a.write_all(b"\r\n").unwrap();
        line.push('\n');
        l.write_all(line.as_bytes()).unwrap();
        if F2B_KINDS.contains(&kind) {
            matched += 1;
        }
    }
    a.flush().unwrap();
    l.flush().unwrap();
    matched
}

struct Run {
    secs: f64,
    peak_kib: u64,
    stdout: String,
}

/// Runs `cmd`, sampling VmHWM until it exits.
fn measure(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            {
                peak = v;
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{cmd:?} failed: {st}");
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    Run {
        secs: start.elapsed().as_secs_f64(),
        peak_kib: peak,
        stdout: reader.join().unwrap(),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    assert!(
        Path::new(FILTER).exists() && Command::new("fail2ban-regex").arg("--version").output().is_ok(),
        "the fail2ban comparison needs Debian's fail2ban: run benches/install-fail2ban.sh (as root)"
    );
    let version = Command::new("fail2ban-regex")
        .arg("--version")
        .output()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // AMPERE_BENCH_DATA=DIR keeps the generated files there (for profiling).
    let keep = std::env::var_os("AMPERE_BENCH_DATA").map(std::path::PathBuf::from);
    let dir = keep.as_deref().unwrap_or(tmp.path());
    let cfg = dir.join("ampere.cfg");
    std::fs::write(&cfg, "pass = x\n").unwrap();
    println!(
        "machine: {} cores, {}; {} ({})",
        thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        String::from_utf8_lossy(&version.stdout).trim(),
        FILTER
    );
    println!();
    // AMPERE_BENCH_BEFORE=BINARY also times an earlier build on the same files, against the
    // same fail2ban run: the before/after of a change in one table.
    let before = std::env::var("AMPERE_BENCH_BEFORE").ok();
    if before.is_some() {
        println!("| mix | events | ampere --replay | fail2ban-regex | ratio | ampere peak RSS | fail2ban peak RSS | before: ampere --replay, ratio, peak RSS |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    } else {
        println!("| mix | events | ampere --replay | fail2ban-regex | ratio | ampere peak RSS | fail2ban peak RSS |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
    }
    let all = [
        (Mix::Scan, 100_000),
        (Mix::Scan, 1_000_000),
        (Mix::Pairs, 600_000),
        (Mix::OneOff, 300_000),
        (Mix::Flood, 300_000),
    ];
    // AMPERE_BENCH_EVENTS=N runs every mix at that size; AMPERE_BENCH_MIX=scan|pairs|
    // one-off|flood one mix only.
    let only = std::env::var("AMPERE_BENCH_MIX").ok();
    let size = std::env::var("AMPERE_BENCH_EVENTS").ok().map(|v| {
        v.parse::<u64>()
            .expect("AMPERE_BENCH_EVENTS must be a number")
    });
    let mut runs: Vec<(Mix, u64)> = Vec::new();
    for (mix, n) in all {
        let n = size.unwrap_or(if bench { n } else { 2_000 });
        let wanted = only.as_deref().is_none_or(|o| o == mix.tag());
        if wanted && !runs.iter().any(|&(m, r)| m.tag() == mix.tag() && r == n) {
            runs.push((mix, n));
        }
    }
    for (mix, n) in runs {
        let tag = mix.tag();
        let (ami, log) = (
            dir.join(format!("events-{tag}-{n}.ami")),
            dir.join(format!("security-{tag}-{n}.log")),
        );
        let matched = generate(n, mix, &ami, &log);
        // The files were just written: get them to disk first, so that neither tool's run
        // competes with the writeback of the other's input.
        assert!(Command::new("sync").status().unwrap().success());
        // Ampere's run is short, so the best of three (fail2ban's takes a minute at 1M).
        let best_of_three = |program: &str| {
            (0..3)
                .map(|_| {
                    measure(
                        Command::new(program)
                            .arg("-c")
                            .arg(&cfg)
                            .arg("--replay")
                            .arg(&ami),
                    )
                })
                .min_by(|x, y| x.secs.total_cmp(&y.secs))
                .unwrap()
        };
        let a = best_of_three(&bin());
        let earlier = before.as_deref().map(best_of_three);
        let summary = a
            .stdout
            .lines()
            .find(|l| l.starts_with("summary: "))
            .unwrap_or("");
        assert!(
            summary.starts_with(&format!("summary: {n} messages;")),
            "ampere did not read every event: {summary}"
        );
        let f = measure(
            Command::new("fail2ban-regex")
                .arg("--print-no-missed")
                .arg(&log)
                .arg(FILTER),
        );
        let lines = f
            .stdout
            .lines()
            .find(|l| l.starts_with("Lines: "))
            .unwrap_or("");
        assert!(
            lines.starts_with(&format!("Lines: {n} lines, 0 ignored, {matched} matched")),
            "fail2ban-regex did not match what its filter should ({matched} of {n}): {lines}"
        );
        let (ra, rf) = (n as f64 / a.secs, n as f64 / f.secs);
        let earlier = earlier.map_or(String::new(), |b| {
            let rb = n as f64 / b.secs;
            format!(" {:.0} events/s, {:.0}x, {} KiB |", rb, rb / rf, b.peak_kib)
        });
        println!(
            "| {} | {n} | {:.0} events/s ({:.2} s) | {:.0} events/s ({:.2} s) | {:.0}x | {} KiB | {} KiB |{earlier}",
            mix.name(),
            ra,
            a.secs,
            rf,
            f.secs,
            ra / rf,
            a.peak_kib,
            f.peak_kib
        );
    }
}
