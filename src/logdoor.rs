//! The log door: security facts AMI does not carry, read from Asterisk's own log lines.
//! chan_iax2 reports no security event at all (its source has no security-event call);
//! with `authdebug = yes` in iax.conf its guesses leave a line each in the `messages` log.
//! A small, fixed set of PCRE2 patterns turns those lines into the same `SecurityEvent` as
//! AMI's (service `IAX2`), so that scoring, trust, prefixes and bans are exactly theirs.
//!
//! Every line here carries the attacker's text (a peer or user name), and a name may hold
//! line breaks: Asterisk writes it as it came, so an attacker can make a line that looks
//! like any other. Each pattern is anchored on what Asterisk writes after the name, at the
//! end of the line, but no anchor proves that a line is Asterisk's own: every event of the
//! log door is weak evidence (`score::Evidence`: a temporary ban of one address, never
//! spread), like a UDP packet's. Call tokens (iax.conf's `requirecalltoken`, on by default)
//! make the IAX2 source itself answer before these lines are written; the line's text is
//! what cannot be trusted.

use std::net::IpAddr;

use pcre2::bytes::{CaptureLocations, Regex, RegexBuilder};

use crate::event::SecurityEvent;
use crate::score::{EventKind, Evidence};

/// Lines longer than this are cut off by the follower and never matched.
pub const MAX_LINE: usize = 4096;

/// What comes before every message of chan_iax2: its file name, and in some logger formats
/// its line number and function.
const MODULE: &str = r"chan_iax2\.c(?::\d+)?(?: \w+)?: ";

/// (pattern, kind, the group of the address, the group of the account).
const PATTERNS: [(&str, EventKind, usize, usize); 3] = [
    // A registration's wrong MD5 secret: `Host 203.0.113.2 failed MD5 authentication for
    // '2001' (x != y)`.
    (
        r"Host (\S+) failed MD5 authentication for '(.*)' \([0-9a-f]* != [0-9a-f]*\)\z",
        EventKind::Iax2AuthFailed,
        1,
        2,
    ),
    // A call's: `Host 203.0.113.2:41868 failed to authenticate as 2001`.
    (
        r"Host (\S+) failed to authenticate as (.*)\z",
        EventKind::Iax2AuthFailed,
        1,
        2,
    ),
    // An unknown peer: `No registration for peer '9999' (from 203.0.113.2)`: the address
    // is Asterisk's, after the name (a greedy name takes any `(from ...)` it holds).
    (
        r"No registration for peer '(.*)' \(from (\S+)\)\z",
        EventKind::InvalidAccountID,
        2,
        1,
    ),
];

/// What one log line was.
#[derive(Debug)]
pub enum LogLine<'a> {
    /// One of the patterns, with a parsed address.
    Event(SecurityEvent<'a>),
    /// One of the patterns, but its address does not parse (a zone, a name, garbage).
    BadAddress(&'a [u8]),
    /// Anything else.
    Other,
}

pub struct LogMatcher {
    /// Each pattern, its kind, where its address and account are, and its capture slots.
    patterns: Vec<(Regex, EventKind, usize, usize, CaptureLocations)>,
}

impl LogMatcher {
    pub fn new() -> LogMatcher {
        let patterns = PATTERNS
            .iter()
            .map(|&(p, kind, addr, account)| {
                let re = RegexBuilder::new()
                    .jit_if_available(true)
                    .build(&format!("{MODULE}{p}"))
                    .expect("the log door's patterns are valid");
                let locs = re.capture_locations();
                (re, kind, addr, account, locs)
            })
            .collect();
        LogMatcher { patterns }
    }

    /// `line` (without its line break) as a security event, if it is one of the patterns.
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> LogLine<'a> {
        // Nearly every line is some other module's: one search for the module first.
        if line.len() > MAX_LINE || memfind(line, b"chan_iax2.c").is_none() {
            return LogLine::Other;
        }
        for (re, kind, addr_at, account_at, locs) in &mut self.patterns {
            if !matches!(re.captures_read(locs, line), Ok(Some(_))) {
                continue;
            }
            let (Some((a0, a1)), Some((n0, n1))) = (locs.get(*addr_at), locs.get(*account_at))
            else {
                continue;
            };
            let raw = &line[a0..a1];
            return match host(raw) {
                Some(ip) => {
                    let mut ev = SecurityEvent::new(*kind, b"IAX2", &line[n0..n1], ip);
                    ev.evidence = Evidence::Weak;
                    LogLine::Event(ev)
                }
                None => LogLine::BadAddress(raw),
            };
        }
        LogLine::Other
    }
}

impl Default for LogMatcher {
    fn default() -> LogMatcher {
        LogMatcher::new()
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The address in `203.0.113.2`, `203.0.113.2:4569`, `2001:db8::1` or
/// `[2001:db8::1]:4569`; None for anything else (a zone, a name, garbage).
fn host(raw: &[u8]) -> Option<IpAddr> {
    let addr = match raw {
        [b'[', rest @ ..] => {
            let end = rest.iter().position(|&b| b == b']')?;
            let after = &rest[end + 1..];
            if !(after.is_empty() || port(after.strip_prefix(b":")?)) {
                return None;
            }
            &rest[..end]
        }
        _ if raw.iter().filter(|&&b| b == b':').count() == 1 => {
            let colon = raw.iter().position(|&b| b == b':')?;
            if !port(&raw[colon + 1..]) {
                return None;
            }
            &raw[..colon]
        }
        _ => raw,
    };
    if addr.contains(&b':') {
        crate::ip_text::v6(addr).map(IpAddr::V6)
    } else {
        crate::ip_text::v4(addr).map(IpAddr::V4)
    }
    .map(crate::addr::canonical)
}

fn port(p: &[u8]) -> bool {
    (1..=5).contains(&p.len())
        && p.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(p).is_ok_and(|s| s.parse::<u16>().is_ok())
}

/// Bytes into lines of at most `MAX_LINE` bytes, whatever pieces they come in: a longer
/// line is dropped whole (counted), up to its line break; nothing else is held.
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// Inside a line already too long: dropped up to its end.
    dropping: bool,
    /// Lines dropped for their length.
    pub too_long: u64,
}

impl Lines {
    /// Each whole line of `data` (after what earlier pieces left), without its `\n` (and
    /// `\r`).
    pub fn push(&mut self, mut data: &[u8], each: &mut dyn FnMut(&[u8])) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (piece, rest) = (&data[..nl], &data[nl + 1..]);
            data = rest;
            if std::mem::replace(&mut self.dropping, false) {
                continue;
            }
            if self.partial.len() + piece.len() > MAX_LINE {
                self.partial.clear();
                self.too_long += 1;
                continue;
            }
            let line = if self.partial.is_empty() {
                piece
            } else {
                self.partial.extend_from_slice(piece);
                &self.partial[..]
            };
            each(line.strip_suffix(b"\r").unwrap_or(line));
            self.partial.clear();
        }
        if self.dropping {
            return;
        }
        if self.partial.len() + data.len() > MAX_LINE {
            self.partial.clear();
            self.dropping = true;
            self.too_long += 1;
        } else {
            self.partial.extend_from_slice(data);
        }
    }

    /// Whether a line has begun and not ended.
    pub fn pending(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Forgets a line begun (a file truncated or replaced under it).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.dropping = false;
    }
}

/// Unix seconds of a log line's `[YYYY-MM-DD HH:MM:SS]` (read as UTC: a replay needs the
/// time between lines, not the zone), for `--replay`.
pub fn line_time(line: &[u8]) -> Option<i64> {
    let t = line.strip_prefix(b"[")?.get(..19)?;
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(&t[r]).ok()?;
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if t[4] != b'-' || t[7] != b'-' || t[10] != b' ' || t[13] != b':' || t[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(crate::clock::days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Whether `data` (the start of a file) is Asterisk's log rather than an AMI stream: its
/// first line starts with a `[YYYY-MM-DD HH:MM:SS]` time.
pub fn looks_like_a_log(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    line_time(first).is_some()
}

#[cfg(test)]
mod tests;
