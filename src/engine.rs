//! The decision core shared by the daemon and `--replay`: event in, verdict out. It owns the
//! penalty table and knows the weights, the limit, the decay and who is protected; it
//! touches neither the firewall nor the database.

use std::net::IpAddr;

use crate::config::Config;
use crate::event::SecurityEvent;
use crate::score::{EventKind, Weight, Weights};
use crate::table::PenaltyTable;
use crate::trust::Guard;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The event's service is not in `services`.
    IgnoredService,
    /// Loopback, the AMI host or a trusted network.
    Protected,
    /// New penalty, still below the limit.
    Scored(u32),
    /// A legitimate event reset the host.
    Cleared,
    /// The limit was reached with this penalty; the host is out of the table.
    Ban(u32),
}

/// Distinct service names counted separately; more (there are only a handful in Asterisk)
/// go to `other`.
const MAX_SERVICES: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Security events by service and kind.
    pub events: Vec<(String, [u64; EventKind::ALL.len()])>,
    pub ban_decisions: u64,
    pub protected: u64,
    pub ignored_service: u64,
    pub bad_address: u64,
}

impl Counters {
    fn count(&mut self, service: &[u8], kind: EventKind) {
        let i = match self
            .events
            .iter()
            .position(|(s, _)| s.as_bytes().eq_ignore_ascii_case(service))
        {
            Some(i) => i,
            None => {
                let name = if self.events.len() < MAX_SERVICES {
                    crate::log::printable(service)
                } else {
                    "other".to_string()
                };
                match self.events.iter().position(|(s, _)| *s == name) {
                    Some(i) => i,
                    None => {
                        self.events.push((name, [0; EventKind::ALL.len()]));
                        self.events.len() - 1
                    }
                }
            }
        };
        self.events[i].1[kind.index()] += 1;
    }

    pub fn by_kind(&self) -> [u64; EventKind::ALL.len()] {
        let mut total = [0; EventKind::ALL.len()];
        for (_, by_kind) in &self.events {
            for (t, n) in total.iter_mut().zip(by_kind) {
                *t += n;
            }
        }
        total
    }

    pub fn summary(&self) -> String {
        let kinds: Vec<String> = EventKind::ALL
            .iter()
            .zip(self.by_kind())
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        format!(
            "events: {}; ban decisions {}, protected {}, other service {}, bad address {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" ")
            },
            self.ban_decisions,
            self.protected,
            self.ignored_service,
            self.bad_address
        )
    }
}

pub struct Engine {
    table: PenaltyTable,
    weights: Weights,
    limit: u32,
    findtime: u64,
    services: Vec<String>,
    guard: Guard,
    pub counters: Counters,
}

impl Engine {
    pub fn new(cfg: &Config) -> Engine {
        let mut e = Engine {
            table: PenaltyTable::new(cfg.table_size),
            weights: Weights::default(),
            limit: 0,
            findtime: 0,
            services: Vec::new(),
            guard: Guard::new(&[], &cfg.host),
            counters: Counters::default(),
        };
        e.reconfigure(cfg);
        e
    }

    /// Applies a reloaded config; the penalties collected so far are kept.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.weights = cfg.weights.clone();
        self.limit = cfg.limit();
        self.findtime = cfg.findtime;
        self.services = cfg.services.clone();
        self.guard = Guard::new(&cfg.trust, &cfg.host);
    }

    pub fn table(&self) -> &PenaltyTable {
        &self.table
    }

    pub fn is_protected(&self, ip: IpAddr) -> bool {
        self.guard.protects(ip).is_some()
    }

    pub fn note_bad_address(&mut self) {
        self.counters.bad_address += 1;
    }

    /// Scores one event at time `now` (seconds, any monotonic origin).
    pub fn feed(&mut self, ev: &SecurityEvent<'_>, now: u64) -> Verdict {
        let (kind, service, addr) = (ev.kind, ev.service, ev.addr());
        self.counters.count(service, kind);
        if !self
            .services
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(service))
        {
            self.counters.ignored_service += 1;
            return Verdict::IgnoredService;
        }
        if self.guard.protects(addr).is_some() {
            self.counters.protected += 1;
            return Verdict::Protected;
        }
        let weight = self.weights.get(kind);
        let current = match self.table.get(addr) {
            // A host quiet for `findtime` starts from zero.
            Some((p, seen)) if now.saturating_sub(seen) < self.findtime => p,
            _ => 0,
        };
        match weight {
            Weight::Clear => {
                self.table.remove(addr);
                Verdict::Cleared
            }
            Weight::Add { base: 0, bump: 0 } => Verdict::Scored(current),
            w => {
                let next = w.apply(current);
                if next >= self.limit {
                    self.table.remove(addr);
                    self.counters.ban_decisions += 1;
                    Verdict::Ban(next)
                } else {
                    self.table.set(addr, next, now);
                    Verdict::Scored(next)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    fn engine(extra: &str) -> Engine {
        let cfg = crate::config::parse(extra.as_bytes(), "t").unwrap().config;
        Engine::new(&cfg)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The engine fed one event as the matcher would build it.
    trait Feed {
        fn feed_as(&mut self, kind: EventKind, service: &[u8], addr: IpAddr, now: u64) -> Verdict;
    }

    impl Feed for Engine {
        fn feed_as(&mut self, kind: EventKind, service: &[u8], addr: IpAddr, now: u64) -> Verdict {
            self.feed(&SecurityEvent::new(kind, service, b"", addr), now)
        }
    }

    #[test]
    fn wrong_password_sequence_bans_on_third_failure() {
        let mut e = engine("");
        let a = ip("10.99.1.2");
        let mut out = Vec::new();
        for k in [
            ChallengeSent,
            ChallengeResponseFailed,
            ChallengeSent,
            ChallengeResponseFailed,
            ChallengeSent,
            ChallengeResponseFailed,
        ] {
            out.push(e.feed_as(k, b"PJSIP", a, 0));
        }
        use Verdict::*;
        assert_eq!(
            out,
            vec![
                Scored(4),
                Scored(5),
                Scored(9),
                Scored(10),
                Scored(14),
                Ban(15)
            ]
        );
        assert!(e.table().is_empty());
    }

    #[test]
    fn protected_and_service_filter() {
        let mut e = engine("trust = 10.99.0.0/16\nservices = PJSIP\n");
        assert_eq!(
            e.feed_as(FailedACL, b"PJSIP", ip("10.99.1.2"), 0),
            Verdict::Protected
        );
        assert_eq!(
            e.feed_as(FailedACL, b"PJSIP", ip("::1"), 0),
            Verdict::Protected
        );
        assert_eq!(
            e.feed_as(FailedACL, b"PJSIP", ip("::ffff:127.0.0.1"), 0),
            Verdict::Protected
        );
        assert_eq!(
            e.feed_as(InvalidPassword, b"AMI", ip("203.0.113.2"), 0),
            Verdict::IgnoredService
        );
        assert_eq!(
            e.feed_as(InvalidPassword, b"pjsip", ip("203.0.113.2"), 0),
            Verdict::Scored(1)
        );
    }

    #[test]
    fn success_clears_and_decay_after_findtime() {
        let mut e = engine("findtime = 60\n");
        let a = ip("203.0.113.2");
        assert_eq!(
            e.feed_as(ChallengeSent, b"PJSIP", a, 100),
            Verdict::Scored(4)
        );
        assert_eq!(
            e.feed_as(SuccessfulAuth, b"PJSIP", a, 101),
            Verdict::Cleared
        );
        assert_eq!(
            e.feed_as(ChallengeSent, b"PJSIP", a, 102),
            Verdict::Scored(4)
        );
        assert_eq!(
            e.feed_as(ChallengeSent, b"PJSIP", a, 161),
            Verdict::Scored(14)
        );
        // quiet for 60 s: starts from zero
        assert_eq!(
            e.feed_as(ChallengeSent, b"PJSIP", a, 221),
            Verdict::Scored(4)
        );
    }

    #[test]
    fn loyalty_and_weights_from_config() {
        let mut e = engine("loyalty = 1\nweight.InvalidPassword = 5\n");
        assert_eq!(
            e.feed_as(InvalidPassword, b"SIP", ip("198.51.100.1"), 0),
            Verdict::Ban(5)
        );
        let mut e = engine("weight.ChallengeSent = 0\n");
        assert_eq!(
            e.feed_as(ChallengeSent, b"SIP", ip("198.51.100.1"), 0),
            Verdict::Scored(0)
        );
        assert!(e.table().is_empty());
    }
}
