//! Shared test harness, one module per job: `recorder` (stands in for iptables),
//! `ami_server` (replays the real captures over TCP, and synthetic events), `runner` (a
//! running `ampere` that is stopped when dropped, and the admin commands), `netns` (network
//! namespaces). Each test binary uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod ami_server;
pub mod netns;
pub mod recorder;
pub mod runner;

pub use ami_server::*;
pub use netns::*;
pub use recorder::*;
pub use runner::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// The binary cargo built for these tests (examples, which only borrow the AMI server, get
/// no such variable).
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_ampere") {
    Some(b) => b,
    None => "ampere",
};

/// The emulator prefix under which `BIN` runs when the tests run for another architecture
/// (`cross/build.sh TRIPLE test` sets it to the target's qemu-user), else empty.
pub fn runner() -> Vec<String> {
    std::env::var("AMPERE_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The binary under test: this build's, unless `AMPERE_TEST_BIN` names another (the
/// benchmarks measure the static musl builds).
pub fn bin() -> String {
    std::env::var("AMPERE_TEST_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// A command that runs the `ampere` binary under test.
pub fn ampere() -> Command {
    let r = runner();
    match r.split_first() {
        Some((emu, args)) => {
            let mut c = Command::new(emu);
            c.args(args).arg(bin());
            c
        }
        None => Command::new(bin()),
    }
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ami")
}

pub fn fixture(name: &str) -> Vec<u8> {
    fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Held while a test writes an executable (the recorder's scripts) and while it forks a
/// process: a child forked between another thread's open-for-writing of a script and its
/// exec keeps that script open for writing, and running it then fails with ETXTBSY ("Text
/// file busy"), which made a parallel test flaky.
pub fn exec_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a finished command printed: its stdout, then its stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An HTTP request's head, read from a test server's client (None: it went away first).
pub fn request_head(s: &mut impl std::io::Read) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    Some(req)
}

/// Waits until `f` is true or panics with `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {secs}s waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The CPU, as the benchmarks describe the machine.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: "))
        .unwrap_or("unknown CPU")
        .to_string()
}

/// Builds an AMI event from header pairs.
pub fn event(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (n, val) in pairs {
        v.extend_from_slice(format!("{n}: {val}\r\n").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v
}

/// A PJSIP `ChallengeResponseFailed` from `addr` for `account`.
pub fn crf(addr: &str, account: &str) -> Vec<u8> {
    event(&[
        ("Event", "ChallengeResponseFailed"),
        ("Privilege", "security,all"),
        ("Severity", "Error"),
        ("Service", "PJSIP"),
        ("AccountID", account),
        ("SessionID", "x"),
        ("RemoteAddress", addr),
        ("Response", "Error"),
    ])
}
