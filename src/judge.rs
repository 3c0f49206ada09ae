//! The one pipeline from an AMI message to a ban request, shared by the daemon, `--replay`
//! and the fuzz targets; they differ only in where time comes from (`Time`). Each stage has
//! its type: `Message` → `SecurityEvent` (`event.rs`) → `Verdict` (`engine.rs`) →
//! `BanRequest`, admitted by the one admission check (`admission.rs`) — or refused, counted
//! and logged. Events whose RemoteAddress is not an address are counted and warned about
//! once per event kind; what Asterisk says about registrations (`facts.rs`) is learned on
//! the way.

use crate::admission::Door;
use crate::ami::Message;
use crate::ban::{BanRequest, Lifetime, Origin, MAX_ACCOUNT};
use crate::config::Config;
use crate::engine::{Engine, Tipped, Verdict, WeakBan};
use crate::event::{Matcher, Parsed, SecurityEvent};
use crate::log::printable;
use crate::score::EventKind;

/// Asterisk's services by the names it writes, kept without a copy; any other as printable
/// text.
fn service_name(service: &[u8]) -> std::borrow::Cow<'static, str> {
    const KNOWN: [&str; 4] = ["PJSIP", "SIP", "IAX2", "AMI"];
    match KNOWN.iter().find(|k| k.as_bytes() == service) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(printable(service)),
    }
}

/// The reason of a ban for an account's own failures from where it logged in before.
pub const STALE_PASSWORD: &str = "stale password";

/// Where the pipeline's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// The daemon's (or a test's) clocks: `mono` seconds for scoring (any origin, never
    /// going back), `wall` unix seconds for the bans.
    At { mono: u64, wall: i64 },
    /// The events' own (`EventTV`; an event without one keeps the time of the one before):
    /// `--replay`, which judges a capture of any age as it happened.
    OfEvents,
}

/// What the pipeline made of one security event.
#[derive(Debug)]
pub struct Judged<'a> {
    pub event: SecurityEvent<'a>,
    pub verdict: Verdict,
    /// The ban the verdict asks for, admitted; None when there is none, or when the
    /// admission check refused it (counted in `refused`, logged).
    pub admitted: Option<Admitted>,
}

/// A ban the pipeline decided and the admission check let in: the network, the penalty and
/// events behind it, and when (wall clock). `Judged::request` makes the `BanRequest` of it;
/// `--replay` prints it without one (nothing allocated per ban there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub net: ipnet::IpNet,
    pub penalty: u32,
    pub events: u32,
    pub at: i64,
    /// Some: on weak evidence (`engine::WeakBan`).
    pub weak: Option<WeakBan>,
}

impl Judged<'_> {
    /// The event's AccountID as a ban keeps it: at most `MAX_ACCOUNT` bytes.
    pub fn account(&self) -> &[u8] {
        let a = self.event.account;
        &a[..a.len().min(MAX_ACCOUNT)]
    }

    /// The ban request of an admitted ban, for `Bans`.
    pub fn request(&self) -> Option<BanRequest> {
        let a = self.admitted?;
        // A stale password's ban is named for what it is, not for the event that tipped it.
        let reason = match a.weak {
            Some(w) if w.stale => STALE_PASSWORD,
            _ => self.event.kind.name(),
        };
        Some(BanRequest {
            service: service_name(self.event.service),
            account: String::from_utf8_lossy(self.account()).into_owned(),
            penalty: a.penalty,
            events: a.events,
            ..BanRequest::new(
                a.net,
                Origin::Daemon,
                reason,
                a.at,
                match a.weak {
                    None => Lifetime::Escalating,
                    Some(w) => Lifetime::Weak {
                        ceiling: w.ceiling.min(i64::MAX as u64) as i64,
                    },
                },
            )
        })
    }
}

pub struct Judge {
    matcher: Matcher,
    /// The log door's patterns (`logdoor.rs`), and what its lines were.
    log: crate::logdoor::LogMatcher,
    pub log_counters: LogCounters,
    pub engine: Engine,
    /// Event kinds already warned about for a bad RemoteAddress (one bit each).
    warned_bad_address: u32,
    warned_duplicate: bool,
    /// The events' time, for `Time::OfEvents`, and its reader.
    event_time: u64,
    event_clock: crate::clock::EventClock,
    /// Ban requests the admission check refused.
    pub refused: u64,
    /// Known hosts warned about for a weak ban, and when (wall clock): once per ban time,
    /// however many events arrive while it holds (at most `MAX_WARNED`).
    warned_known: Vec<(ipnet::IpNet, i64)>,
}

/// What the log door's lines were (`Judge::judge_line`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCounters {
    pub lines: u64,
    /// Security events (a guess, an unknown peer).
    pub events: u64,
    /// A pattern's line whose address does not parse.
    pub bad_address: u64,
}

/// Known hosts remembered for `Judge::warned_known`.
const MAX_WARNED: usize = 64;

impl Judge {
    pub fn new(cfg: &Config) -> Judge {
        Judge {
            matcher: Matcher::new(),
            log: crate::logdoor::LogMatcher::new(),
            log_counters: LogCounters::default(),
            engine: Engine::new(cfg),
            warned_bad_address: 0,
            warned_duplicate: false,
            event_time: 0,
            event_clock: crate::clock::EventClock::default(),
            refused: 0,
            warned_known: Vec::new(),
        }
    }

    /// Forgets every penalty but keeps the compiled pattern and what was warned about (the
    /// fuzz target starts each input from scratch; compiling or logging per input would
    /// starve it).
    pub fn reset(&mut self, cfg: &Config) {
        self.engine = Engine::new(cfg);
        self.event_time = 0;
    }

    /// `m` through the pipeline at `time`. None for anything that is not a security event
    /// with a usable address. (Inlined: returned by value, a `Judged` was copied out of it
    /// for every event.)
    #[inline]
    pub fn judge<'a>(&mut self, m: &Message<'a>, time: Time) -> Option<Judged<'a>> {
        let ev = self.security_event(m, time)?;
        Some(self.judge_event(ev, time))
    }

    /// A line of Asterisk's log (the log door, `logdoor.rs`) through the same pipeline: None
    /// for a line that is no security event. With `Time::OfEvents` the line's own time
    /// counts.
    pub fn judge_line<'a>(&mut self, line: &'a [u8], time: Time) -> Option<Judged<'a>> {
        self.log_counters.lines += 1;
        let ev = match self.log.parse(line) {
            crate::logdoor::LogLine::Other => return None,
            crate::logdoor::LogLine::BadAddress(raw) => {
                self.log_counters.bad_address += 1;
                if self.log_counters.bad_address == 1 {
                    crate::warn!(
                        "a line of Asterisk's log names no address Ampere reads ({}): counted from now on, not logged",
                        printable(&raw[..raw.len().min(64)])
                    );
                }
                return None;
            }
            crate::logdoor::LogLine::Event(ev) => ev,
        };
        self.log_counters.events += 1;
        if time == Time::OfEvents {
            if let Some(t) = crate::logdoor::line_time(line) {
                self.event_time = u64::try_from(t).unwrap_or(0);
            }
        }
        Some(self.judge_event(ev, time))
    }

    /// A security event through the engine and the admission check.
    #[inline]
    fn judge_event<'a>(&mut self, ev: SecurityEvent<'a>, time: Time) -> Judged<'a> {
        let (mono, wall) = match time {
            Time::At { mono, wall } => (mono, wall),
            Time::OfEvents => {
                if let Some(t) = ev.tv.and_then(|tv| self.event_clock.read(tv)) {
                    self.event_time = t;
                }
                (self.event_time, self.event_time as i64)
            }
        };
        let verdict = self.engine.feed(&ev, mono);
        let admitted = match verdict {
            Verdict::Ban(t) => self.admit(&t, &ev, wall),
            _ => None,
        };
        Judged {
            event: ev,
            verdict,
            admitted,
        }
    }

    /// The ban a verdict asks for, if the admission check lets it in.
    fn admit(&mut self, t: &Tipped, ev: &SecurityEvent<'_>, at: i64) -> Option<Admitted> {
        let net = t.net;
        if let Err(why) = self.engine.admission().check(&net, Door::Judged) {
            self.refused += 1;
            crate::warn!(
                "{} reached the limit ({}) but is not banned: it {why}",
                crate::addr::net_text(&net),
                t.penalty
            );
            return None;
        }
        if let Some(w) = t.weak.filter(|w| w.stale) {
            crate::warn!(
                "account `{}` failed {} times from {}, where it logged in before (a device with an old password?): banned for {} s only; `ampere why {}` names it",
                printable(ev.account),
                t.events,
                crate::addr::net_text(&net),
                w.ceiling,
                crate::addr::net_text(&net)
            );
        } else if let Some(w) = t
            .weak
            .filter(|w| w.known && self.first_warning(net, at, w.ceiling))
        {
            // Loudly: a forger who knows a phone's address can cause this; so can a guesser
            // behind the phone's NAT (pjsip-reset-abuse). Only the admin can tell.
            crate::warn!(
                "{} logged in before, and reached the limit ({}) on evidence a forged packet can make ({}, account `{}`): banned for {} s only; if it is an office, put it in `trust`",
                crate::addr::net_text(&net),
                t.penalty,
                ev.kind.name(),
                printable(ev.account),
                w.ceiling
            );
        }
        Some(Admitted {
            net,
            penalty: t.penalty,
            events: t.events,
            at,
            weak: t.weak,
        })
    }

    /// Whether a known host's weak ban at `at` is worth a warning: none for it within
    /// `ceiling` seconds before.
    fn first_warning(&mut self, net: ipnet::IpNet, at: i64, ceiling: u64) -> bool {
        let since = at.saturating_sub(ceiling.min(i64::MAX as u64) as i64);
        self.warned_known.retain(|&(_, t)| t > since);
        if self.warned_known.iter().any(|&(n, _)| n == net) {
            return false;
        }
        if self.warned_known.len() >= MAX_WARNED {
            self.warned_known.remove(0);
        }
        self.warned_known.push((net, at));
        true
    }

    /// The security event in `m`; what is not one is counted (and warned about once), or
    /// learned from.
    fn security_event<'a>(&mut self, m: &Message<'a>, time: Time) -> Option<SecurityEvent<'a>> {
        match self.matcher.parse(m) {
            Parsed::Other => None,
            Parsed::Facts(facts) => {
                let mono = match time {
                    Time::At { mono, .. } => mono,
                    Time::OfEvents => self.event_time,
                };
                for f in &facts {
                    self.engine.learn(f, mono);
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
                if let Some(judged) = j.judge(&m, Time::At { mono: 0, wall: 0 }) {
                    out.push(judged.verdict);
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
        // The mapped address is the same host: the third probe bans it, for an hour at
        // most (UDP: weak evidence).
        assert_eq!(
            verdicts,
            [
                Verdict::Scored(5),
                Verdict::Scored(10),
                Verdict::Ban(Tipped {
                    penalty: 15,
                    net: "203.0.113.2/32".parse().unwrap(),
                    events: 3,
                    weak: Some(WeakBan {
                        ceiling: 3600,
                        known: false,
                        stale: false
                    })
                })
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
