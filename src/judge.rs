//! The one path from an AMI message to a verdict, shared by the daemon, `--replay` and the
//! fuzz target: match the message into a security event, score it in the engine, and warn
//! (once per event kind) about events whose RemoteAddress is not an address.

use crate::ami::Message;
use crate::config::Config;
use crate::engine::{Engine, Verdict};
use crate::event::{Matcher, Parsed, SecurityEvent};
use crate::log::printable;
use crate::score::EventKind;

pub struct Judge {
    matcher: Matcher,
    pub engine: Engine,
    /// Event kinds already warned about for a bad RemoteAddress (one bit each).
    warned_bad_address: u32,
    warned_duplicate: bool,
}

impl Judge {
    pub fn new(cfg: &Config) -> Judge {
        Judge {
            matcher: Matcher::new(),
            engine: Engine::new(cfg),
            warned_bad_address: 0,
            warned_duplicate: false,
        }
    }

    /// Forgets every penalty but keeps the compiled pattern and what was warned about (the
    /// fuzz target starts each input from scratch; compiling or logging per input would
    /// starve it).
    pub fn reset(&mut self, cfg: &Config) {
        self.engine = Engine::new(cfg);
    }

    /// Scores `m` at `now` (seconds, any monotonic origin). None for anything that is not a
    /// security event with a usable address; what Asterisk says about registrations and
    /// trunks (`facts.rs`) is learned on the way.
    pub fn judge<'a>(&mut self, m: &Message<'a>, now: u64) -> Option<(SecurityEvent<'a>, Verdict)> {
        let ev = self.security_event(m, now)?;
        Some((ev, self.engine.feed(&ev, now)))
    }

    /// The security event in `m`; what is not one is counted (and warned about once), or
    /// learned from.
    fn security_event<'a>(&mut self, m: &Message<'a>, now: u64) -> Option<SecurityEvent<'a>> {
        match self.matcher.parse(m) {
            Parsed::Other => None,
            Parsed::Facts(facts) => {
                for f in &facts {
                    self.engine.learn(f, now);
                }
                None
            }
            Parsed::Duplicate => {
                self.engine.counters.duplicate_headers += 1;
                if !std::mem::replace(&mut self.warned_duplicate, true) {
                    crate::warn!("a message with a header Ampere reads given twice was dropped (counted from now on, not logged)");
                }
                None
            }
            Parsed::BadAddress { kind, raw } => {
                self.bad_address(kind, raw);
                None
            }
            Parsed::Security(ev) => Some(ev),
        }
    }

    /// `judge` at the time the event itself gives (`EventTV`), for `--replay`: `now` is
    /// set from it and stays for events without one.
    pub fn judge_by_event_time<'a>(
        &mut self,
        m: &Message<'a>,
        now: &mut u64,
    ) -> Option<(SecurityEvent<'a>, Verdict)> {
        let ev = self.security_event(m, *now)?;
        if let Some(t) = ev.tv.and_then(crate::clock::event_tv) {
            *now = t;
        }
        Some((ev, self.engine.feed(&ev, *now)))
    }

    fn bad_address(&mut self, kind: EventKind, raw: &[u8]) {
        self.engine.note_bad_address();
        let bit = 1 << kind.index();
        if self.warned_bad_address & bit == 0 {
            self.warned_bad_address |= bit;
            crate::warn!(
                "{}: RemoteAddress `{}` is not an address; such events are ignored (logged once per event kind)",
                kind.name(),
                printable(raw)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ami::{Framer, Item};

    fn judged(cfg: &str, stream: &str) -> (Vec<Verdict>, u64) {
        let cfg = crate::config::parse(cfg.as_bytes(), "t").unwrap().config;
        let mut j = Judge::new(&cfg);
        let mut framer = Framer::new();
        let mut out = Vec::new();
        framer.push(b"Asterisk Call Manager/9.0.0\r\n", &mut |_| {});
        framer.push(stream.as_bytes(), &mut |item| {
            if let Item::Message(m) = item {
                if let Some((_, v)) = j.judge(&m, 0) {
                    out.push(v);
                }
            }
        });
        (out, j.engine.counters.bad_address)
    }

    fn ev(kind: &str, remote: &str) -> String {
        format!(
            "Event: {kind}\r\nService: PJSIP\r\nAccountID: 1001\r\nRemoteAddress: {remote}\r\n\r\n"
        )
    }

    #[test]
    fn messages_become_verdicts_and_bad_addresses_are_counted() {
        let stream = [
            ev("InvalidAccountID", "IPV4/UDP/203.0.113.2/5060"),
            "Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n".to_string(),
            ev("InvalidAccountID", "IPV4/UDP/not-an-ip/5060"),
            ev("InvalidAccountID", "IPV6/UDP/::ffff:203.0.113.2/5060"),
            ev("InvalidAccountID", "IPV4/UDP/203.0.113.2/5060"),
            ev("InvalidAccountID", "IPV4/UDP/$(id)/5060"),
        ]
        .concat();
        // Scored by weight (the rule that bans an unknown account at once is the engine's).
        let (verdicts, bad) = judged("ban_unknown_account = no\n", &stream);
        // The mapped address is the same host: the third probe bans it.
        assert_eq!(
            verdicts,
            [
                Verdict::Scored(5),
                Verdict::Scored(10),
                Verdict::Ban(15, "203.0.113.2/32".parse().unwrap(), 3)
            ]
        );
        assert_eq!(bad, 2);
    }

    #[test]
    fn trust_holds_on_this_path() {
        let stream = ev("FailedACL", "IPV4/UDP/10.1.2.3/5060").repeat(10);
        let (verdicts, _) = judged("trust = 10.0.0.0/8\n", &stream);
        assert!(
            verdicts.iter().all(|v| *v == Verdict::Protected),
            "{verdicts:?}"
        );
    }
}
