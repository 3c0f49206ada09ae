//! Start-up restore and per-ban cost of each firewall backend, on the real kernel, in a
//! network namespace of its own. Needs root, iptables, ipset and nft.
//!
//!   make bench-restore        (cargo bench --bench restore)
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a small smoke round that
//! checks the restored sets are complete, so the benchmark code stays tested.
//!
//! Figures: restore time for 1k/10k/100k bans per backend (and 1M for ipset and nft), as
//! time and as a ratio to the iptables backend at the same size; ban cost (one `ban` call)
//! and `ampere -a` of one address with 0 and with the most bans in place; `ampere -a` and
//! `-d` of that many; the daemon's peak RSS with none and with them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use ampere::firewall;
use ampere::firewall::Entry;
use common::{cpu_model, sh};
use ipnet::IpNet;

/// When the benchmark's bans are made.
const NOW: i64 = 1_800_000_000;

/// `n` distinct bans, one in eight IPv6, a third of them with a timeout.
fn entries(n: usize, offset: u32) -> Vec<Entry> {
    (0..n as u32)
        .map(|i| {
            let k = i + offset;
            let ip = if k % 8 == 7 {
                IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0bad_u128 << 80 | u128::from(k)))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k))
            };
            Entry {
                net: IpNet::from(ip),
                expires: (k % 3 == 0).then_some(NOW + 86_400),
            }
        })
        .collect()
}

fn config(backend: &str) -> ampere::config::Config {
    ampere::config::parse(format!("backend = {backend}\n").as_bytes(), "bench")
        .unwrap()
        .config
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One `ban` call: the median over `n` fresh addresses.
fn ban_cost(fw: &dyn firewall::Backend, n: usize, offset: u32) -> Duration {
    let mut times = Vec::new();
    for e in entries(n, offset) {
        let t = Instant::now();
        fw.ban(&e, NOW).unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

fn exec_floor() -> Duration {
    median(
        (0..30)
            .map(|_| {
                let t = Instant::now();
                Command::new("/bin/true").status().unwrap();
                t.elapsed()
            })
            .collect(),
    )
}

fn count_in_kernel(backend: &str) -> usize {
    let out = |a: &[&str]| {
        String::from_utf8_lossy(&Command::new(a[0]).args(&a[1..]).output().unwrap().stdout)
            .into_owned()
    };
    match backend {
        "iptables" => {
            out(&["iptables", "-w", "-S", "ampere"])
                .matches("-A ampere -s")
                .count()
                + out(&["ip6tables", "-w", "-S", "ampere"])
                    .matches("-A ampere -s")
                    .count()
        }
        "ipset" => ["ampere-v4", "ampere-v6"]
            .iter()
            .map(|s| {
                let o = out(&["ipset", "list", s, "-t"]);
                o.lines()
                    .find_map(|l| l.strip_prefix("Number of entries: "))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap()
            })
            .sum(),
        _ => ["v4", "net4", "v6", "net6"]
            .iter()
            .map(|set| {
                let o = out(&["nft", "list", "set", "inet", "ampere", set]);
                match o.find("elements = {") {
                    Some(i) => {
                        o[i..o[i..].find('}').map_or(o.len(), |j| i + j)]
                            .matches(',')
                            .count()
                            + 1
                    }
                    None => 0,
                }
            })
            .sum(),
    }
}

fn inside(smoke: bool) {
    for t in ["iptables", "ip6tables"] {
        assert!(sh(&[t, "-w", "-N", "ampere"]).0);
    }
    let sizes: &[usize] = if smoke {
        &[300, 1_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    // iptables goes one rule at a time through its chain: a million is not a use for it.
    let fits = |backend: &str, n: usize| backend != "iptables" || n <= 100_000;
    let floor = exec_floor();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("floor: fork+exec of /bin/true: {:.2} ms", ms(floor));
    println!();
    println!("| backend | bans | restore | vs iptables |");
    println!("| --- | --- | --- | --- |");
    let mut base = Vec::new();
    for backend in ["iptables", "ipset", "nft"] {
        let fw = firewall::backend(&config(backend));
        fw.prepare().unwrap();
        for (i, &n) in sizes.iter().enumerate().filter(|(_, &n)| fits(backend, n)) {
            let e = entries(n, 0);
            let t = Instant::now();
            fw.restore(&firewall::Listed(&e), NOW).unwrap();
            let took = t.elapsed();
            assert_eq!(count_in_kernel(backend), n, "{backend}: restore incomplete");
            if backend == "iptables" {
                base.push(took);
            }
            let vs = base.get(i).map_or("(none)".to_string(), |b| {
                format!("{:.2}x", took.as_secs_f64() / b.as_secs_f64())
            });
            println!("| {backend} | {n} | {:.0} ms | {vs} |", ms(took));
        }
        fw.restore(&firewall::Listed(&[]), NOW).unwrap();
    }
    println!();
    println!("ban cost: one `ban` call (the backend in this process), and `ampere -a` of one address (the binary, no daemon, its database and lock included), with no ban and with many in place");
    println!();
    println!("| backend | in place | ban cost, 0 | many | ratio | `-a` of one, 0 | many | ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let samples = if smoke { 5 } else { 25 };
    for backend in ["iptables", "ipset", "nft"] {
        let big = *sizes.iter().rfind(|&&n| fits(backend, n)).unwrap();
        let fw = firewall::backend(&config(backend));
        fw.restore(&firewall::Listed(&[]), NOW).unwrap();
        let empty = ban_cost(fw.as_ref(), samples, 1 << 24);
        let one_empty = add_one(backend, samples, 1 << 23);
        fw.restore(&firewall::Listed(&entries(big, 0)), NOW)
            .unwrap();
        let full = ban_cost(fw.as_ref(), samples, 1 << 25);
        let one_full = add_one(backend, samples, 1 << 22);
        println!(
            "| {backend} | {big} | {:.2} ms | {:.2} ms | {:.2}x | {:.1} ms | {:.1} ms | {:.2}x |",
            ms(empty),
            ms(full),
            full.as_secs_f64() / empty.as_secs_f64(),
            ms(one_empty),
            ms(one_full),
            one_full.as_secs_f64() / one_empty.as_secs_f64()
        );
        fw.restore(&firewall::Listed(&[]), NOW).unwrap();
    }
    println!();
    println!("| backend | `ampere -a` of | took | `ampere -d` of them | daemon's peak RSS, 0 bans | with them | ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for backend in ["iptables", "ipset", "nft"] {
        let n = *sizes.iter().rfind(|&&n| fits(backend, n)).unwrap();
        let (add, del, rss) = import(backend, n);
        println!(
            "| {backend} | {n} | {:.0} ms | {:.0} ms | {} KiB | {} KiB | {:.2}x |",
            ms(add),
            ms(del),
            rss.0,
            rss.1,
            rss.1 as f64 / rss.0 as f64
        );
    }
}

/// `ampere -a` of one address at a time through the binary, with no daemon: the median.
fn add_one(backend: &str, n: usize, offset: u32) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bench_config(dir.path(), backend, "");
    median(
        entries(n, offset)
            .iter()
            .map(|e| {
                let t = Instant::now();
                run_binary(
                    &cfg,
                    &["-a"],
                    &format!("{}\n", ampere::addr::net_text(&e.net)),
                );
                t.elapsed()
            })
            .collect(),
    )
}

fn bench_config(dir: &std::path::Path, backend: &str, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("ampere.cfg");
    std::fs::write(
        &cfg,
        format!(
            "backend = {backend}\ndb = {}\nsocket = {}\n{extra}",
            dir.join("a.db").display(),
            dir.join("a.sock").display()
        ),
    )
    .unwrap();
    cfg
}

fn run_binary(cfg: &std::path::Path, args: &[&str], input: &str) {
    let mut child = common::ampere()
        .arg("-c")
        .arg(cfg)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The daemon's peak RSS (VmHWM, KiB) once it has restored what the database holds and
/// audited it once (the survey's child is not the daemon).
fn daemon_peak(cfg: &std::path::Path) -> u64 {
    let mut d = common::ampere()
        .arg("-c")
        .arg(cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", d.id());
    let keys = || {
        let o = common::ampere()
            .arg("-c")
            .arg(cfg)
            .args(["status", "keys"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let end = Instant::now() + Duration::from_secs(600);
    while !keys()
        .lines()
        .any(|l| l.starts_with("audits ") && l != "audits 0")
    {
        assert!(Instant::now() < end, "no audit within 10 min");
        std::thread::sleep(Duration::from_millis(200));
    }
    let hwm = std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    stop(&mut d);
    hwm
}

fn stop(d: &mut std::process::Child) {
    let _ = Command::new("kill").arg(d.id().to_string()).status();
    let _ = d.wait();
}

/// `ampere -a` of `n` addresses from a pipe, then `ampere -d` of them all, through the real
/// binary and the backend's batches: how long each took; and the daemon's peak RSS started
/// on an empty database and on the one with the `n` bans.
fn import(backend: &str, n: usize) -> (Duration, Duration, (u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    // No AMI answers there: the daemon restores, audits and retries its connection.
    let daemon = "host = 127.0.0.1\nport = 9\naudit_interval = 1\n";
    let cfg = bench_config(dir.path(), backend, daemon);
    let empty = daemon_peak(&cfg);
    let list: String = entries(n, 1 << 26)
        .iter()
        .map(|b| format!("{}\n", ampere::addr::net_text(&b.net)))
        .collect();
    let t = Instant::now();
    run_binary(&cfg, &["-a"], &list);
    let add = t.elapsed();
    assert_eq!(count_in_kernel(backend), n, "{backend}: import incomplete");
    let full = daemon_peak(&cfg);
    assert_eq!(
        count_in_kernel(backend),
        n,
        "{backend}: the daemon lost bans"
    );
    let t = Instant::now();
    run_binary(&cfg, &["-d"], &list);
    let del = t.elapsed();
    assert_eq!(count_in_kernel(backend), 0, "{backend}: removal incomplete");
    (add, del, (empty, full))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if std::env::var("AMPERE_BENCH_INSIDE").is_ok() {
        inside(!bench);
        return;
    }
    let ns = format!("ampbench{}", std::process::id());
    assert!(
        sh(&["ip", "netns", "add", &ns]).0,
        "the restore benchmark needs root and iproute2 (ip netns add)"
    );
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns])
        .arg(exe)
        .env("AMPERE_BENCH_INSIDE", "1");
    if bench {
        cmd.arg("--bench");
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    sh(&["ip", "netns", "del", &ns]);
    assert!(ok, "benchmark failed");
}
