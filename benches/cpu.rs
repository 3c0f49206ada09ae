//! CPU per event at a steady attack rate: the daemon connected to a test AMI server on
//! loopback that sends 5,000 events/s for 20 s, then 50,000 events/s for 10 s
//! (ChallengeResponseFailed, each from a new address, so every event is parsed, matched and
//! scored, and the penalty table keeps evicting).
//! CPU time comes from /proc/PID/schedstat (nanoseconds, not clock ticks).
//!
//! Baseline in the same run: a plain reader (this program in `drain` mode) that logs in and
//! only reads the same stream from the same server: the cost of receiving the bytes at all.
//!
//!   make bench-cpu            (cargo bench --bench cpu)
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a smoke round of 2 s and
//! 1 s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Events per second, and for how long (s): as measured, and in the smoke round.
const RATES: [(u64, u64, u64); 2] = [(5_000, 20, 2), (50_000, 10, 1)];

/// CPU time a process has used, in ns.
fn cpu_ns(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn stream(n: u64) -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        (0..n)
            .map(|i| crf_event(i, &remote(i, true)).into_bytes())
            .collect(),
    )
}

fn server(n: u64, rate: u64) -> AmiServer {
    AmiServer::start(vec![Plan::Paced {
        events: stream(n),
        per_sec: rate,
        write_timeout: Duration::from_secs(10),
    }])
}

/// Waits for the paced stream to end; returns the CPU `pid` used meanwhile and the time.
fn cpu_during(server: &AmiServer, pid: u32, secs: u64) -> (f64, f64) {
    let before = cpu_ns(pid);
    wait_for(secs + 30, "the paced stream to end", || {
        server.paced().is_some()
    });
    let r = server.paced().unwrap();
    assert!(r.dropped.is_none(), "{:?}", r.dropped);
    ((cpu_ns(pid) - before) as f64 / 1e9, r.elapsed.as_secs_f64())
}

/// `drain` mode: log in and read until the server closes.
fn drain(addr: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"Action: Login\r\nActionID: drain\r\nUsername: x\r\nSecret: y\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    while s.read(&mut buf).is_ok_and(|n| n > 0) {}
}

struct Reader(Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if let Ok(addr) = std::env::var("AMPERE_BENCH_DRAIN") {
        drain(&addr);
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    println!(
        "machine: {} cores, {}; events each from a new address",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!();
    println!("| events/s | process | CPU | CPU per event | vs plain reader |");
    println!("| --- | --- | --- | --- | --- |");
    for (rate, long, short) in RATES {
        measure(rate, if bench { long } else { short });
    }
}

/// The plain reader, then ampere, each through `secs` s of `rate` events/s; prints both rows.
fn measure(rate: u64, secs: u64) {
    let n = rate * secs;
    // baseline: a plain reader of the same stream
    let srv = server(n, rate);
    let reader = Reader(
        Command::new(std::env::current_exe().unwrap())
            .env("AMPERE_BENCH_DRAIN", srv.addr.to_string())
            .spawn()
            .unwrap(),
    );
    let (base_cpu, base_wall) = cpu_during(&srv, reader.0.id(), secs);
    drop(reader);
    drop(srv);

    let srv = server(n, rate);
    let setup = Setup::new(Some(srv.addr), "ping_interval = 1h\n");
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in"));
    let (cpu, wall) = cpu_during(&srv, d.pid(), secs);
    assert_eq!(d.stop(), 0);
    assert!(setup.stored().is_empty(), "nobody reached the limit");
    let stats = setup.log();
    assert!(
        stats.contains(&format!("ChallengeResponseFailed={n}")),
        "ampere did not score every event:\n{stats}"
    );
    for (name, c, w) in [
        ("plain reader (baseline)", base_cpu, base_wall),
        ("ampere", cpu, wall),
    ] {
        println!(
            "| {rate} | {name} | {:.2} % | {:.2} µs | {:.2}x |",
            100.0 * c / w,
            c * 1e6 / n as f64,
            c / base_cpu
        );
    }
}
