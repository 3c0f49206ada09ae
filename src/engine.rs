//! The decision core shared by the daemon and `--replay`: event in, verdict out. It owns the
//! penalty table and knows the weights, the limit, the decay and who is protected; it
//! touches neither the firewall nor the database.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::config::Config;
use crate::event::SecurityEvent;
use crate::score::{EventKind, Weight, Weights};
use crate::table::{Host, PenaltyTable};
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
    /// Messages dropped for a header Ampere reads given twice.
    pub duplicate_headers: u64,
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
            "events: {}; ban decisions {}, protected {}, other service {}, bad address {}, duplicate headers {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" ")
            },
            self.ban_decisions,
            self.protected,
            self.ignored_service,
            self.bad_address,
            self.duplicate_headers
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
    ban_unknown_account: bool,
    /// The address of the AMI connection, protected like the AMI host.
    ami_peer: Option<IpAddr>,
    /// Keyed per process: an attacker who picks account names cannot make two collide.
    accounts: RandomState,
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
            ban_unknown_account: false,
            ami_peer: None,
            accounts: RandomState::new(),
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
        let peer = self.ami_peer;
        self.guard = Guard::new(&cfg.trust, &cfg.host);
        self.guard.set_peer(peer);
        self.ban_unknown_account = cfg.ban_unknown_account;
    }

    /// An account as the table keeps it: a keyed hash, 0 for none.
    fn account_key(&self, account: &[u8]) -> u32 {
        if account.is_empty() {
            return 0;
        }
        (self.accounts.hash_one(account) as u32).max(1)
    }

    /// The address Ampere is connected to for AMI (resolved anew at each connect).
    pub fn set_ami_peer(&mut self, peer: Option<IpAddr>) {
        if peer != self.ami_peer {
            self.ami_peer = peer;
            self.guard.set_peer(peer);
        }
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
        let mut h = self.table.host(addr).unwrap_or_default();
        if now.saturating_sub(h.scored) >= self.findtime {
            // Quiet for `findtime`: the penalty starts from zero; a success is remembered.
            h = Host {
                ok_accts: h.ok_accts,
                ..Host::default()
            };
        }
        let acct = self.account_key(ev.account);
        match weight {
            Weight::Clear => {
                // A success takes back what failures against that same account added (the
                // phone that mistyped its own password), never anything else: not failures
                // against other accounts (pjsip-reset-abuse), unknown accounts or ACLs.
                if acct != 0 && h.acct == acct {
                    h.penalty = h.penalty.saturating_sub(h.acct_penalty);
                    h.acct = 0;
                    h.acct_penalty = 0;
                }
                h.note_login(acct);
                self.table.put(addr, h, now);
                if h.penalty == 0 {
                    Verdict::Cleared
                } else {
                    Verdict::Scored(h.penalty)
                }
            }
            Weight::Add { base: 0, bump: 0 } => Verdict::Scored(h.penalty),
            _ if kind == EventKind::ChallengeSent && h.logged_in(acct) => {
                // How digest authentication starts, for an account this host has logged in
                // to: a phone's keepalive OPTIONS or its next REGISTER, not an attack.
                self.table.touch(addr, now);
                Verdict::Scored(h.penalty)
            }
            w => {
                let mut next = w.apply(h.penalty);
                if kind == EventKind::InvalidAccountID
                    && self.ban_unknown_account
                    && !h.ever_logged_in()
                {
                    // An unknown account from a host that never logged in: a scanner's probe.
                    next = next.max(self.limit);
                }
                if kind.is_credential() && acct != 0 {
                    if h.acct != acct {
                        h.acct = acct;
                        h.acct_penalty = 0;
                    }
                    h.acct_penalty = h.acct_penalty.saturating_add(next - h.penalty);
                }
                h.penalty = next;
                h.scored = now;
                if next >= self.limit {
                    self.table.remove(addr);
                    self.counters.ban_decisions += 1;
                    Verdict::Ban(next)
                } else {
                    self.table.put(addr, h, now);
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
            self.feed(&SecurityEvent::new(kind, service, b"1001", addr), now)
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

    fn feed_acct(e: &mut Engine, kind: EventKind, acct: &str, a: IpAddr, now: u64) -> Verdict {
        e.feed(&SecurityEvent::new(kind, b"PJSIP", acct.as_bytes(), a), now)
    }

    #[test]
    fn success_clears_its_own_account_and_decay_after_findtime() {
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
        // Challenges for another account count as before.
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1002", a, 102),
            Verdict::Scored(4)
        );
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1002", a, 161),
            Verdict::Scored(14)
        );
        // quiet for 60 s: starts from zero
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1002", a, 221),
            Verdict::Scored(4)
        );
    }

    #[test]
    fn a_success_never_clears_failures_against_another_account() {
        // pjsip-reset-abuse: guesses against 1002, a login as 1001 after every second one.
        let mut e = engine("");
        let a = ip("10.99.1.2");
        let mut out = Vec::new();
        for _ in 0..3 {
            for _ in 0..2 {
                out.push(feed_acct(&mut e, ChallengeSent, "1002", a, 0));
                out.push(feed_acct(&mut e, ChallengeResponseFailed, "1002", a, 0));
            }
            out.push(feed_acct(&mut e, ChallengeSent, "1001", a, 0));
            out.push(feed_acct(&mut e, SuccessfulAuth, "1001", a, 0));
        }
        use Verdict::*;
        assert_eq!(
            out[..8],
            [
                Scored(4),
                Scored(5),
                Scored(9),
                Scored(10),
                Scored(14),
                Scored(10),
                Scored(14),
                Ban(15)
            ]
        );
        // Also when the success comes without a challenge of its own first.
        let c = ip("10.99.1.4");
        assert_eq!(feed_acct(&mut e, ChallengeSent, "1002", c, 0), Scored(4));
        assert_eq!(
            feed_acct(&mut e, ChallengeResponseFailed, "1002", c, 0),
            Scored(5)
        );
        assert_eq!(feed_acct(&mut e, SuccessfulAuth, "1001", c, 0), Scored(5));
        // Nor failures of unknown accounts or ACLs.
        let b = ip("10.99.1.3");
        assert_eq!(feed_acct(&mut e, FailedACL, "1002", b, 0), Scored(4));
        assert_eq!(feed_acct(&mut e, SuccessfulAuth, "1002", b, 0), Scored(4));
    }

    #[test]
    fn a_mistyped_password_is_forgiven_by_the_right_one() {
        let mut e = engine("");
        let a = ip("10.99.1.2");
        for (k, p) in [
            (ChallengeSent, 4),
            (ChallengeResponseFailed, 5),
            (ChallengeSent, 9),
            (ChallengeResponseFailed, 10),
            (ChallengeSent, 14),
        ] {
            assert_eq!(feed_acct(&mut e, k, "1001", a, 0), Verdict::Scored(p));
        }
        assert_eq!(
            feed_acct(&mut e, SuccessfulAuth, "1001", a, 0),
            Verdict::Cleared
        );
    }

    #[test]
    fn keepalive_challenges_of_a_logged_in_phone_are_free_but_failures_count() {
        // pjsip-options-keepalive: REGISTER (challenge, success), then unanswered OPTIONS.
        let mut e = engine("");
        let a = ip("10.99.1.2");
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1001", a, 0),
            Verdict::Scored(4)
        );
        assert_eq!(
            feed_acct(&mut e, SuccessfulAuth, "1001", a, 1),
            Verdict::Cleared
        );
        for t in 2..100 {
            assert_eq!(
                feed_acct(&mut e, ChallengeSent, "1001", a, t),
                Verdict::Scored(0)
            );
        }
        assert_eq!(
            feed_acct(&mut e, ChallengeResponseFailed, "1001", a, 100),
            Verdict::Scored(1)
        );
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1002", a, 101),
            Verdict::Scored(5)
        );
        // pjsip-challenge: a host that never logged in keeps its verdict (4, 14, 24).
        let b = ip("10.99.1.9");
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1001", b, 0),
            Verdict::Scored(4)
        );
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1001", b, 0),
            Verdict::Scored(14)
        );
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1001", b, 0),
            Verdict::Ban(24)
        );
    }

    #[test]
    fn an_unknown_account_bans_a_host_that_never_logged_in() {
        let mut e = engine("");
        assert_eq!(
            feed_acct(&mut e, InvalidAccountID, "100", ip("203.0.113.2"), 0),
            Verdict::Ban(15)
        );
        // A host that logged in before is scored as the weight says.
        let a = ip("10.99.1.2");
        feed_acct(&mut e, SuccessfulAuth, "1001", a, 0);
        assert_eq!(
            feed_acct(&mut e, InvalidAccountID, "1009", a, 1),
            Verdict::Scored(5)
        );
        // And the rule can be turned off.
        let mut off = engine("ban_unknown_account = no\n");
        assert_eq!(
            feed_acct(&mut off, InvalidAccountID, "100", ip("203.0.113.2"), 0),
            Verdict::Scored(5)
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
