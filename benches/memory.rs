//! Peak memory (VmHWM) of the running daemon, connected to a test AMI server on loopback,
//! while it replays the largest capture (pjsip-flood: 5,011 events from one attacker) and
//! while it takes a distributed flood of events from N distinct addresses, each below the ban
//! limit, reported at 10k, 100k and 1M events so that a growing table would show.
//!
//! Baseline in the same run: the daemon idle right after login.
//!
//! ```text
//! make bench-memory                       (this build's release binary)
//! AMPERE_TEST_BIN=target/x86_64-unknown-linux-musl/size/ampere cargo bench --bench memory
//! AMPERE_TEST_BIN=target/armv7-unknown-linux-musleabihf/size/ampere \
//!   AMPERE_TEST_RUNNER="qemu-arm-static -cpu cortex-a7" cargo bench --bench memory
//! ```
//!
//! Under qemu-user the figure is qemu's process: guest and emulator together. Without
//! `--bench` (as `cargo test --all-targets` runs it) it does a small smoke round.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Waits until the daemon's counters show `n` ChallengeResponseFailed events.
fn processed(setup: &Setup, d: &Daemon, n: u64) {
    let needle = format!("ChallengeResponseFailed={n} ");
    let needle_end = format!("ChallengeResponseFailed={n};");
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        d.signal("USR1");
        std::thread::sleep(Duration::from_millis(200));
        let log = setup.log();
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains("stats:"))
            .unwrap_or("");
        let none = n == 0 && last.contains("events none");
        if none || last.contains(&needle) || last.contains(&needle_end) {
            return;
        }
        assert!(
            Instant::now() < end,
            "daemon did not process {n} events: {last}"
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    println!(
        "binary: {}{}",
        runner().join(" "),
        if runner().is_empty() {
            bin()
        } else {
            format!(" {}", bin())
        }
    );

    // 1. the largest capture
    let server = AmiServer::start(vec![Plan::ReplayThenSilent {
        file: "pjsip-flood.ami".into(),
    }]);
    let setup = Setup::new(Some(server.addr), "ping_interval = 1h\n");
    let d = setup.spawn();
    wait_for(60, "login", || setup.log().contains("logged in"));
    processed(&setup, &d, 5001);
    let flood = (d.peak_rss_kib(), d.anon_rss_kib());
    assert_eq!(d.stop(), 0);
    assert_eq!(setup.stored(), ["203.0.113.2"]);
    drop(server);

    // 2. a distributed flood
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(Some(server.addr), "ping_interval = 1h\n");
    let d = setup.spawn();
    wait_for(30, "login", || setup.log().contains("logged in"));
    processed(&setup, &d, 0);
    let idle = d.peak_rss_kib();
    println!("figures: peak RSS (VmHWM) and, in brackets, anonymous RSS (heap and stacks, without the program text)");
    println!(
        "idle after login (baseline): {idle} KiB [{} KiB]",
        d.anon_rss_kib()
    );
    println!(
        "pjsip-flood capture (5,011 events): {} KiB [{} KiB] ({:.2}x baseline)",
        flood.0,
        flood.1,
        flood.0 as f64 / idle as f64
    );
    // AMPERE_BENCH_EVENTS caps the flood (an emulated run need not go to a million).
    let cap: u64 = std::env::var("AMPERE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let all: &[u64] = if full {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[2_000, 4_000]
    };
    let checkpoints: Vec<u64> = all.iter().copied().filter(|&c| c <= cap).collect();
    let mut sent = 0u64;
    for &cp in &checkpoints {
        while sent < cp {
            let mut batch = String::new();
            for _ in 0..1000.min(cp - sent) {
                // distinct addresses from 10.0.0.0/8 and 2001:db8::/32; one event each
                batch.push_str(&crf_event(sent, &remote(sent, true)));
                sent += 1;
            }
            tx.send(batch.into_bytes()).unwrap();
        }
        processed(&setup, &d, cp);
        let rss = d.peak_rss_kib();
        println!(
            "distributed flood, {cp} events from {cp} addresses: {rss} KiB [{} KiB] ({:.2}x baseline)",
            d.anon_rss_kib(),
            rss as f64 / idle as f64
        );
    }
    assert_eq!(d.stop(), 0);
    assert!(setup.stored().is_empty(), "nobody reached the limit");
}
