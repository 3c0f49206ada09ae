//! Start-up restore and per-ban cost of each firewall backend, on the real kernel, in a
//! network namespace of its own. Needs root, iptables, ipset and nft.
//!
//!   make bench-restore        (cargo bench --bench restore)
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a small smoke round that
//! checks the restored sets are complete, so the benchmark code stays tested.
//!
//! Figures: restore time for 1k/10k/100k bans per backend, as time and as a ratio to the
//! iptables backend at the same size; ban cost (one `ban` call) with 0 and with 100k bans in
//! place, and its ratio to a bare fork+exec of /bin/true measured in the same run.

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
        &[300]
    } else {
        &[1_000, 10_000, 100_000]
    };
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
        for (i, &n) in sizes.iter().enumerate() {
            let e = entries(n, 0);
            let t = Instant::now();
            fw.restore(&e, NOW).unwrap();
            let took = t.elapsed();
            assert_eq!(count_in_kernel(backend), n, "{backend}: restore incomplete");
            if backend == "iptables" {
                base.push(took);
            }
            println!(
                "| {backend} | {n} | {:.0} ms | {:.2}x |",
                ms(took),
                took.as_secs_f64() / base[i].as_secs_f64()
            );
        }
        fw.restore(&[], NOW).unwrap();
    }
    println!();
    println!(
        "| backend | ban cost, 0 bans | ban cost, {} bans | ratio | vs exec floor (0 / many) |",
        sizes[sizes.len() - 1]
    );
    println!("| --- | --- | --- | --- | --- |");
    let big = sizes[sizes.len() - 1];
    let samples = if smoke { 5 } else { 25 };
    for backend in ["iptables", "ipset", "nft"] {
        let fw = firewall::backend(&config(backend));
        fw.restore(&[], NOW).unwrap();
        let empty = ban_cost(fw.as_ref(), samples, 1 << 24);
        fw.restore(&entries(big, 0), NOW).unwrap();
        let full = ban_cost(fw.as_ref(), samples, 1 << 25);
        println!(
            "| {backend} | {:.2} ms | {:.2} ms | {:.2}x | {:.1}x / {:.1}x |",
            ms(empty),
            ms(full),
            full.as_secs_f64() / empty.as_secs_f64(),
            empty.as_secs_f64() / floor.as_secs_f64(),
            full.as_secs_f64() / floor.as_secs_f64()
        );
        fw.restore(&[], NOW).unwrap();
    }
    let n = if smoke { 300 } else { 100_000 };
    println!();
    println!("| backend | `ampere -a` of {n} addresses | `ampere -d` of them |");
    println!("| --- | --- | --- |");
    for backend in ["iptables", "ipset", "nft"] {
        let (add, del) = import(backend, n);
        println!("| {backend} | {:.0} ms | {:.0} ms |", ms(add), ms(del));
    }
}

/// `ampere -a` of `n` addresses from a pipe, then `ampere -d` of them all, through the real
/// binary and the backend's batches: how long each took.
fn import(backend: &str, n: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ampere.cfg");
    std::fs::write(
        &cfg,
        format!(
            "backend = {backend}\ndb = {}\n",
            dir.path().join("a.db").display()
        ),
    )
    .unwrap();
    let list: String = entries(n, 1 << 26)
        .iter()
        .map(|b| format!("{}\n", ampere::addr::net_text(&b.net)))
        .collect();
    let run = |flag: &str| {
        let t = Instant::now();
        let mut child = common::ampere()
            .args(["-c", cfg.to_str().unwrap(), flag])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), list.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{backend} {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let add = run("-a");
    assert_eq!(count_in_kernel(backend), n, "{backend}: import incomplete");
    let del = run("-d");
    assert_eq!(count_in_kernel(backend), 0, "{backend}: removal incomplete");
    (add, del)
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
