//! No allocation per event: the path from bytes to verdict (framer, matcher, engine: the
//! daemon's, through `--replay`'s driver) allocates as often for 200,000 events as for
//! 50,000, counted by an instrumented global allocator. The events score without banning
//! (a ban is stored and printed: that allocates, once per ban), each from an address of its
//! own, through a penalty table of 4,096 (an eviction per event once it is full), with other events and successful
//! logins between them, handed over in pieces that cut lines and messages anywhere.
//!
//! Alone in its binary: the counter sees every thread.

use std::alloc::System;
use std::io::Read;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// `n` events, as Asterisk writes them.
fn stream(n: u64) -> Vec<u8> {
    let mut s = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
    for i in 0..n {
        let host = i.wrapping_mul(7919) % 1_000_000;
        let remote = if host % 4 == 3 {
            format!("IPV6/UDP/2001:db8:{:x}::1/5060", host)
        } else {
            format!(
                "IPV4/UDP/10.{}.{}.{}/5060",
                host >> 16,
                (host >> 8) & 255,
                host & 255
            )
        };
        let event = match i % 10 {
            0 => "Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                .to_string(),
            5 => format!(
                "Event: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: 2026-11-23T08:41:{:02}.264+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 10{}\r\nSessionID: 0x7f\r\nLocalAddress: IPV4/UDP/192.0.2.1/5060\r\nRemoteAddress: {remote}\r\nUsingPassword: 1\r\n\r\n",
                i % 60,
                i % 7
            ),
            _ => format!(
                "Event: ChallengeSent\r\nPrivilege: security,all\r\nEventTV: 2026-11-23T08:41:{:02}.264+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 10{}\r\nSessionID: 0x7f\r\nLocalAddress: IPV4/UDP/192.0.2.1/5060\r\nRemoteAddress: {remote}\r\nChallenge: 1a2b3c\r\n\r\n",
                i % 60,
                i % 7
            ),
        };
        s.extend_from_slice(event.as_bytes());
    }
    s
}

/// Hands out its data in pieces of 1,000 to 1,499 bytes.
struct Pieces<'a> {
    data: &'a [u8],
    turn: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.turn += 1;
        let n = (1000 + self.turn * 37 % 500)
            .min(self.data.len())
            .min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Allocations (and reallocations) of one replay of `data`.
fn allocations(cfg: &ampere::config::Config, data: &[u8]) -> (usize, u64) {
    let reg = Region::new(GLOBAL);
    let o = ampere::replay::replay_from(cfg, &mut Pieces { data, turn: 0 }, &mut std::io::sink())
        .unwrap();
    let c = reg.change();
    assert!(
        o.bans.is_empty(),
        "the events were meant to score without banning"
    );
    (c.allocations + c.reallocations, o.messages)
}

#[test]
fn the_path_from_bytes_to_verdict_allocates_nothing_per_event() {
    // The memory of known hosts (a row per host that logged in) grows to its bound and then
    // holds: `known_max` small enough that both runs fill it, so that its growth (a fixed
    // number of allocations) falls in both and only a cost per event would differ.
    let cfg = ampere::config::parse(b"table_size = 4096\nknown_max = 1000\n", "t")
        .unwrap()
        .config;
    let (small, large) = (stream(50_000), stream(200_000));
    // A first run, so that one-time costs (the pattern's JIT, the hasher's keys) are paid.
    allocations(&cfg, &small);
    let (a, n) = allocations(&cfg, &small);
    let (b, m) = allocations(&cfg, &large);
    assert_eq!((n, m), (50_000, 200_000));
    println!("measured: allocations per replay: {a} for {n} events, {b} for {m}");
    assert_eq!(
        a,
        b,
        "{} more allocations for {} more events",
        b as i64 - a as i64,
        m - n
    );
}
