//! `ampere --replay FILE`: a captured AMI stream through the same framer, matcher and engine
//! as the daemon, without touching the firewall or the database. For tuning weights (like
//! fail2ban-regex) and for seeing Ampere work without an Asterisk.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use ipnet::IpNet;

use crate::addr::net_text;
use crate::ami::{Framer, Item};
use crate::clock::days_from_civil;
use crate::config::Config;
use crate::engine::Verdict;
use crate::judge::Judge;
use crate::log::printable;

/// Seconds since the epoch of an `EventTV` such as `2026-11-23T08:41:22.264+0000`.
pub fn event_tv(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut t = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se;
    // An optional UTC offset (`+0000`, `-0130`) after the fraction.
    if let Some(pos) = s[19..].find(['+', '-']) {
        let off = &s[19 + pos..];
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let oh = off.get(1..3)?.parse::<i64>().ok()?;
        let om = off.get(3..5)?.parse::<i64>().ok()?;
        t -= sign * (oh * 3600 + om * 60);
    }
    u64::try_from(t).ok()
}

/// What a replay decided.
pub struct Outcome {
    /// What was banned: addresses, or networks with prefix scoring.
    pub bans: Vec<IpNet>,
    pub messages: u64,
    pub summary: String,
}

/// Replays `data`, writing one `ban ADDRESS|NETWORK EVENT ACCOUNT PENALTY` line per ban
/// decision.
pub fn replay(cfg: &Config, data: &[u8], out: &mut dyn Write) -> std::io::Result<Outcome> {
    replay_from(cfg, &mut &data[..], out)
}

/// As `replay`, reading the stream in pieces: memory stays flat whatever the file's size.
pub fn replay_from(
    cfg: &Config,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut judge = Judge::new(cfg);
    let mut framer = Framer::new();
    let mut bans: Vec<IpNet> = Vec::new();
    let mut banned: HashSet<IpNet> = HashSet::new();
    let mut messages = 0u64;
    let mut now = 0u64;
    let mut result = Ok(());
    let mut buf = vec![0u8; 1 << 16];
    let mut first = true;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if std::mem::take(&mut first) && !buf[..n].starts_with(b"Asterisk Call Manager") {
            // A stream saved without its banner: the first line is already a header.
            framer.push(b"(no banner)\n", &mut |_| {});
        }
        framer.push(&buf[..n], &mut |item| {
            let Item::Message(m) = item else { return };
            messages += 1;
            if let Some(t) = m.get("EventTV").and_then(event_tv) {
                now = t;
            }
            if let Some((ev, Verdict::Ban(p, net, _))) = judge.judge(m, now) {
                // The daemon records a ban once; later events still in flight find it
                // already stored. Print each network once, as the daemon bans it once.
                if banned.insert(net) {
                    bans.push(net);
                    let account = if ev.account.is_empty() {
                        "-".to_string()
                    } else {
                        printable(ev.account)
                    };
                    if result.is_ok() {
                        result = writeln!(
                            out,
                            "ban {} {} {} {}",
                            net_text(&net),
                            ev.kind.name(),
                            account,
                            p
                        );
                    }
                }
            }
        });
        std::mem::replace(&mut result, Ok(()))?;
    }
    let summary = format!(
        "{} messages; {}; {} address(es) banned",
        messages,
        judge.engine.counters.summary(),
        bans.len()
    );
    Ok(Outcome {
        bans,
        messages,
        summary,
    })
}

pub fn run(cfg: &Config, file: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let o = replay_from(cfg, &mut f, &mut out).map_err(|e| format!("{}: {e}", file.display()))?;
    writeln!(out, "summary: {}", o.summary).map_err(|e| e.to_string())?;
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
    fn event_tv_parses_with_offset() {
        assert_eq!(event_tv(b"1970-01-01T00:00:00.000+0000"), Some(0));
        assert_eq!(
            event_tv(b"2026-11-23T08:41:22.264+0000"),
            Some(1_795_423_282)
        );
        assert_eq!(
            event_tv(b"2026-11-23T09:41:22.264+0100"),
            Some(1_795_423_282)
        );
        assert_eq!(event_tv(b"2026-11-23T08:41:22"), Some(1_795_423_282));
        assert_eq!(event_tv(b"2026-13-23T08:41:22.264+0000"), None);
        assert_eq!(event_tv(b"garbage"), None);
        assert_eq!(event_tv(b"\xff\xfe"), None);
    }
}
