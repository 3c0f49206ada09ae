//! `ampere --replay FILE`: a captured AMI stream through the same framer, matcher and engine
//! as the daemon, without touching the firewall or the database. For tuning weights (like
//! fail2ban-regex) and for seeing Ampere work without an Asterisk.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use ipnet::IpNet;

use crate::addr::net_text;
use crate::ami::{Framer, Item};
use crate::config::Config;
use crate::error::Error;
use crate::judge::{Judge, Judged, Time};
use crate::log::printable;
use crate::table::FoldState;

/// What a replay decided.
pub struct Outcome {
    /// What was banned: addresses, or networks with prefix scoring.
    pub bans: Vec<IpNet>,
    pub messages: u64,
    pub summary: String,
}

/// Replays `data`, writing one `ban ADDRESS|NETWORK EVENT ACCOUNT PENALTY [weak]` line per
/// ban decision.
pub fn replay(cfg: &Config, data: &[u8], out: &mut dyn Write) -> std::io::Result<Outcome> {
    replay_from(cfg, &mut &data[..], out)
}

/// What a replay prints: each ban the daemon would make, once per network (and again when
/// strong evidence comes for a network banned on weak, as the daemon replaces that ban).
struct Printer<'o> {
    out: &'o mut dyn Write,
    bans: Vec<IpNet>,
    /// Each network printed, and whether its ban was strong.
    banned: HashMap<IpNet, bool, FoldState>,
    line: Vec<u8>,
    result: std::io::Result<()>,
}

impl Printer<'_> {
    fn judged(&mut self, j: &Judged<'_>) {
        let Some(a) = j.admitted else {
            return;
        };
        let strong = a.weak.is_none();
        let new = match self.banned.get(&a.net) {
            None => true,
            Some(&was_strong) => strong && !was_strong,
        };
        if !new {
            return;
        }
        if self.banned.insert(a.net, strong).is_none() {
            self.bans.push(a.net);
        }
        if self.result.is_ok() {
            ban_line(
                &mut self.line,
                &a.net,
                j.event.kind.name(),
                j.account(),
                a.penalty,
                a.weak.is_some(),
            );
            self.result = self.out.write_all(&self.line);
        }
    }
}

/// As `replay`, reading the stream in pieces: memory stays flat whatever the file's size.
/// An AMI stream, or Asterisk's log (the log door's lines, `logdoor.rs`), told apart by
/// its first line.
pub fn replay_from(
    cfg: &Config,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut judge = Judge::new(cfg);
    let mut framer = Framer::new();
    let mut lines = crate::logdoor::Lines::default();
    let mut p = Printer {
        out,
        bans: Vec::new(),
        banned: HashMap::with_hasher(FoldState::new()),
        line: Vec::with_capacity(128),
        result: Ok(()),
    };
    let mut messages = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    // The start of the input until it shows what it is (a whole first line, or 64 bytes).
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let mut log = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut data = &buf[..n];
        let held;
        if let Some(h) = head.as_mut() {
            h.extend_from_slice(data);
            if n > 0 && h.len() < 64 && !h.contains(&b'\n') {
                continue;
            }
            held = head.take().unwrap_or_default();
            data = &held;
            log = crate::logdoor::looks_like_a_log(data);
            if !log && !data.starts_with(b"Asterisk Call Manager") {
                // A stream saved without its banner: the first line is already a header.
                framer.push(b"(no banner)\n", &mut |_| {});
            }
        }
        if log {
            lines.push(data, &mut |line| {
                messages += 1;
                if let Some(j) = judge.judge_line(line, Time::OfEvents) {
                    p.judged(&j);
                }
            });
        } else {
            framer.push(data, &mut |item| {
                let Item::Message(m) = item else { return };
                messages += 1;
                // The daemon's own pipeline, on the events' time: what it would ask to
                // ban, after the same admission check.
                if let Some(j) = judge.judge(&m, Time::OfEvents) {
                    p.judged(&j);
                }
            });
        }
        std::mem::replace(&mut p.result, Ok(()))?;
        // The daemon stores what it learned of legitimate hosts; a replay keeps nothing.
        judge.engine.discard_learned();
        if n == 0 {
            break;
        }
    }
    if log && lines.pending() {
        // A last line without its line break.
        lines.push(b"\n", &mut |line| {
            messages += 1;
            if let Some(j) = judge.judge_line(line, Time::OfEvents) {
                p.judged(&j);
            }
        });
        std::mem::replace(&mut p.result, Ok(()))?;
    }
    let summary = format!(
        "{} {}; {}; {} address(es) banned",
        messages,
        if log { "lines" } else { "messages" },
        judge.engine.counters.summary(),
        p.bans.len()
    );
    Ok(Outcome {
        bans: p.bans,
        messages,
        summary,
    })
}

/// `ban ADDRESS|NETWORK EVENT ACCOUNT PENALTY`, then ` weak` for a ban on weak evidence
/// (`score::Evidence`: temporary, never spread), and a newline, in `line`. An IPv4 address
/// is written by hand: a replay of a scan prints tens of thousands of lines, and the
/// formatting machinery cost more per line than judging the events that led to it.
fn ban_line(line: &mut Vec<u8>, net: &IpNet, kind: &str, account: &[u8], penalty: u32, weak: bool) {
    line.clear();
    line.extend_from_slice(b"ban ");
    match net {
        IpNet::V4(n) if n.prefix_len() == 32 => {
            for (i, o) in n.addr().octets().into_iter().enumerate() {
                if i > 0 {
                    line.push(b'.');
                }
                decimal(line, u32::from(o));
            }
        }
        _ => line.extend_from_slice(net_text(net).as_bytes()),
    }
    line.push(b' ');
    line.extend_from_slice(kind.as_bytes());
    line.push(b' ');
    if account.is_empty() {
        line.push(b'-');
    } else {
        line.extend_from_slice(printable(account).as_bytes());
    }
    line.push(b' ');
    decimal(line, penalty);
    if weak {
        line.extend_from_slice(b" weak");
    }
    line.push(b'\n');
}

fn decimal(line: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[i..]);
}

pub fn run(cfg: &Config, file: &Path) -> Result<(), Error> {
    let shown = file.display();
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(&shown, e))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let o = replay_from(cfg, &mut f, &mut out).map_err(|e| Error::io(&shown, e))?;
    writeln!(out, "summary: {}", o.summary).map_err(|e| Error::io("standard output", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data `step` bytes at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_read_in_pieces_gives_the_same_bans() {
        let cfg = crate::config::parse(b"", "t").unwrap().config;
        let mut data = Vec::new();
        for i in 0..40u32 {
            data.extend_from_slice(
                format!(
                    "Event: InvalidAccountID\r\nService: PJSIP\r\nAccountID: {i}\r\nRemoteAddress: IPV4/UDP/198.51.100.{}/5060\r\n\r\n",
                    i % 7
                )
                .as_bytes(),
            );
        }
        let whole = replay(&cfg, &data, &mut std::io::sink()).unwrap();
        assert_eq!(whole.bans.len(), 7);
        for step in [1, 3, 64] {
            let mut t = Trickle { data: &data, step };
            let o = replay_from(&cfg, &mut t, &mut std::io::sink()).unwrap();
            assert_eq!((o.bans, o.messages), (whole.bans.clone(), whole.messages));
        }
    }

    #[test]
    fn a_guesser_once_a_minute_is_banned_whatever_the_one_off_noise() {
        // 6,000 one-off wrong passwords a minute from other addresses (cheap with spoofed
        // UDP sources) against a table of 4,096, and one guess a minute: banned at the
        // third. With least-recently-seen eviction the noise pushed it out every minute.
        let cfg = crate::config::parse(b"", "t").unwrap().config;
        let ev = |kind: &str, addr: &str, minute: u32, i: u32| {
            format!(
                "Event: {kind}\r\nEventTV: 2026-11-23T09:{minute:02}:{:02}.000+0000\r\nService: PJSIP\r\nAccountID: 1001\r\nRemoteAddress: IPV4/UDP/{addr}/5060\r\n\r\n",
                i % 60
            )
        };
        let mut data = String::new();
        let mut next = 0u32;
        for minute in 0..5 {
            for i in 0..6000 {
                let a = format!("10.{}.{}.{}", next >> 16, (next >> 8) & 255, next & 255);
                data.push_str(&ev("ChallengeResponseFailed", &a, minute, i));
                next += 1;
            }
            data.push_str(&ev("ChallengeSent", "198.51.100.9", minute, 59));
            data.push_str(&ev("ChallengeResponseFailed", "198.51.100.9", minute, 59));
        }
        let o = replay(&cfg, data.as_bytes(), &mut std::io::sink()).unwrap();
        assert_eq!(
            o.bans,
            [IpNet::from(
                "198.51.100.9".parse::<std::net::IpAddr>().unwrap()
            )],
            "{}",
            o.summary
        );
    }

    #[test]
    fn ban_lines_read_as_the_formatter_writes_them() {
        let mut line = Vec::new();
        for (net, account, penalty) in [
            ("203.0.113.2/32", &b"1001"[..], 15u32),
            ("0.0.0.0/32", b"", 0),
            ("255.255.255.255/32", b"a b\xff", 4_294_967_295),
            ("10.9.0.0/16", b"x", 100),
            ("2001:db8::1/128", b"x", 7),
            ("2001:db8::/64", b"x", 7),
        ] {
            let net: IpNet = net.parse().unwrap();
            ban_line(&mut line, &net, "FailedACL", account, penalty, penalty == 7);
            let account = if account.is_empty() {
                "-".to_string()
            } else {
                printable(account)
            };
            let weak = if penalty == 7 { " weak" } else { "" };
            let want = format!(
                "ban {} FailedACL {account} {penalty}{weak}\n",
                net_text(&net)
            );
            assert_eq!(String::from_utf8_lossy(&line), want);
        }
    }
}
