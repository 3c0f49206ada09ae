//! The decision core shared by the daemon and `--replay`: event in, verdict out. It owns the
//! penalty table and knows the weights, the limit, the decay and who is protected; it
//! touches neither the firewall nor the database.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::account;
use crate::admission::Admission;
use crate::ami::same_name;
use crate::config::Config;
use crate::event::SecurityEvent;
use crate::facts::Source;
use crate::known::Known;
use crate::score::{EventKind, Evidence, Weight, Weights};
use crate::table::{Host, PenaltyTable};

mod counters;
mod learn;
mod notes;
mod verdict;
pub use counters::Counters;
pub use notes::{Notes, Refusal, Stale};
pub use verdict::{Tipped, Verdict, WeakBan};

pub struct Engine {
    table: PenaltyTable,
    weights: Weights,
    limit: u32,
    findtime: u64,
    services: Vec<String>,
    /// Who is never banned, and what every door may ban (`admission.rs`).
    admission: Admission,
    ban_unknown_account: bool,
    /// `weak_bantime`, `weak_known_bantime`: the longest bans on weak evidence.
    weak_bantime: u64,
    weak_known_bantime: u64,
    /// `stale_password_limit`: what an account's own failures from where it logged in may
    /// add up to (`Engine::stale`).
    stale_limit: u32,
    /// Registrar refusals and stale accounts, for the admin (`notes.rs`).
    notes: Notes,
    /// `ipv4_prefix`, `ipv6_prefix`: how wide a network one penalty counts for.
    prefix_v4: u8,
    prefix_v6: u8,
    /// Protected networks already named in the log for narrowing a prefix (at most one
    /// entry per protected network).
    warned_overlap: Vec<IpNet>,
    /// Who authenticated (or is registered) from where: survives restarts through the
    /// database (`known.rs`).
    known: Known,
    /// The wall clock (unix seconds) at `feed`'s time 0: the known hosts are stored with
    /// wall-clock times, scoring runs on the monotonic clock.
    wall_base: i64,
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
            admission: Admission::new(cfg, &Admission::ami_literal(cfg)),
            ban_unknown_account: false,
            weak_bantime: 0,
            weak_known_bantime: 0,
            stale_limit: 0,
            notes: Notes::default(),
            prefix_v4: 32,
            prefix_v6: 128,
            warned_overlap: Vec::new(),
            known: Known::new(cfg.known_max),
            wall_base: 0,
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
        self.admission.reconfigure(cfg);
        self.ban_unknown_account = cfg.ban_unknown_account;
        self.weak_bantime = cfg.weak_bantime;
        self.weak_known_bantime = cfg.weak_known_bantime;
        self.stale_limit = cfg.stale_password_limit;
        self.prefix_v4 = cfg.ipv4_prefix;
        self.prefix_v6 = cfg.ipv6_prefix;
        self.warned_overlap.clear();
        self.known.set_max(cfg.known_max);
    }

    /// The wall clock at time 0 of `feed`'s `now` (the daemon's start; 0 for `--replay`,
    /// whose times are the events' own).
    pub fn set_wall_base(&mut self, base: i64) {
        self.wall_base = base;
    }

    fn wall(&self, now: u64) -> i64 {
        self.wall_base
            .saturating_add(now.min(i64::MAX as u64) as i64)
    }

    /// The `ipv4_prefix`/`ipv6_prefix` network of `addr`; a LAN address stays single
    /// (`addr::is_lan`).
    fn prefix_of(&self, addr: IpAddr) -> IpNet {
        if crate::addr::scored_alone(addr) {
            return IpNet::from(addr);
        }
        let len = match addr {
            IpAddr::V4(_) => self.prefix_v4,
            IpAddr::V6(_) => self.prefix_v6,
        };
        IpNet::new(addr, len)
            .expect("prefix lengths are checked when the config is read")
            .trunc()
    }

    /// What an event from `addr` (not itself protected) is scored and banned as: its
    /// prefix network, or the address alone where that network would take in a protected
    /// one (trust, the AMI host, loopback): trust always wins over the width of a ban. The
    /// second value is the protected network that narrowed it.
    pub fn key_of(&self, addr: IpAddr) -> (IpNet, Option<IpNet>) {
        let net = self.prefix_of(addr);
        if crate::addr::is_host(&net) {
            return (net, None);
        }
        match self.admission.narrows(&net) {
            Some(p) => (IpNet::from(addr), Some(p)),
            None => (net, None),
        }
    }

    /// `key_of`, naming once in the log each protected network that narrowed a prefix.
    fn key_logged(&mut self, addr: IpAddr) -> IpNet {
        let (key, narrowed) = self.key_of(addr);
        if let Some(p) = narrowed.filter(|p| !self.warned_overlap.contains(p)) {
            self.warned_overlap.push(p);
            crate::warn!(
                "{} takes in {} {}: addresses there are scored and banned one by one (logged once)",
                crate::addr::net_text(&self.prefix_of(addr)),
                self.admission.name_of(&p),
                crate::addr::net_text(&p)
            );
        }
        key
    }

    /// The address Ampere is connected to for AMI (resolved anew at each connect).
    pub fn set_ami_peer(&mut self, peer: Option<IpAddr>) {
        if peer.map(crate::addr::canonical) != self.admission.peer() {
            self.admission.set_peer(peer);
        }
    }

    /// The PBX's own addresses and links, as last read from the kernel (`own.rs`).
    pub fn set_own(&mut self, own: &crate::own::OwnNets) {
        self.admission.set_own(&own.addr_nets(), &own.link_nets());
        self.warned_overlap.clear();
    }

    /// The addresses the `trust = NAME` entries resolve to now.
    pub fn set_trusted_names(&mut self, nets: &[IpNet]) {
        self.admission.set_named(nets);
    }

    /// Whether the failures of `acct` from the host keyed `key` (`h` in the table) are a
    /// stale password's, counted apart (`Engine::stale`): the account authenticated from
    /// there before. The table's Bloom bits first (nearly always no), then the exact rows.
    fn counted_apart(&self, h: &Host, key: IpAddr, acct: u32) -> bool {
        h.logged_in(acct) && self.known.authenticated(key, acct)
    }

    /// Registrar refusals and stale accounts.
    pub fn notes(&self) -> &Notes {
        &self.notes
    }

    pub fn table(&self) -> &PenaltyTable {
        &self.table
    }

    /// What may be banned, through which door (`admission.rs`): the rules every door asks.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The penalty that bans.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The network `addr` is scored as and its penalty now (None: not tracked, or quiet for
    /// `findtime`, which starts it from zero).
    pub fn penalty_of(&self, addr: IpAddr, now: u64) -> (IpNet, Option<u32>) {
        let (net, _) = self.key_of(addr);
        let h = self
            .table
            .host(net.network())
            .filter(|h| now.saturating_sub(h.scored) < self.findtime && h.penalty > 0);
        (net, h.map(|h| h.penalty))
    }

    /// Forgets the penalties of `nets`: the one each address is scored under, and every one
    /// inside each network (an admin's `-d`: the host starts from zero). Addresses by key;
    /// one scan of the table for all networks, and only when one is asked.
    pub fn forget(&mut self, nets: &[IpNet]) {
        let (hosts, networks): (Vec<&IpNet>, Vec<&IpNet>) =
            nets.iter().partition(|n| crate::addr::is_host(n));
        let mut keys: Vec<IpAddr> = Vec::new();
        if !networks.is_empty() {
            keys.extend(
                self.table
                    .iter()
                    .map(|(ip, _)| ip)
                    .filter(|ip| networks.iter().any(|n| n.contains(ip))),
            );
        }
        for h in hosts {
            keys.push(h.network());
            keys.push(self.key_of(h.network()).0.network());
        }
        for k in keys {
            self.table.remove(k);
        }
    }

    /// The `n` highest penalties still below the limit, highest first, as (network scored,
    /// penalty).
    pub fn near_limit(&self, now: u64, n: usize) -> Vec<(IpNet, u32)> {
        let mut v: Vec<(IpNet, u32)> = self
            .table
            .iter()
            .filter(|(_, h)| h.penalty > 0 && h.penalty < self.limit)
            .filter(|(_, h)| now.saturating_sub(h.scored) < self.findtime)
            .map(|(ip, h)| (self.key_of(ip).0, h.penalty))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Trusted networks, loopback and the AMI host as configured (the firewall's SIP limits
    /// exempt them).
    pub fn protected(&self) -> &[IpNet] {
        self.admission.protected()
    }

    pub fn is_protected(&self, ip: IpAddr) -> bool {
        self.admission.protects(ip).is_some()
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
            .any(|s| same_name(s.as_bytes(), service))
        {
            self.counters.ignored_service += 1;
            return Verdict::IgnoredService;
        }
        if self.admission.protects(addr).is_some() {
            self.counters.protected += 1;
            return Verdict::Protected;
        }
        let net = self.key_logged(addr);
        // The table is keyed by the network's first address: within one prefix every
        // address narrows or none does, so a prefix and a single address never share a key.
        let key = net.network();
        let weight = self.weights.get(kind);
        let (entry, tracked) = self.table.entry(key);
        let mut h = match tracked {
            Some(h) => h,
            // New to the table: it starts with what Ampere knows of it (`known.rs`), which
            // outlives eviction and restarts.
            None => Host {
                ok_accts: self.known.mark(key).map_or(0, |m| m.accts),
                ..Host::default()
            },
        };
        if now.saturating_sub(h.scored) >= self.findtime {
            // Quiet for `findtime`: the penalty starts from zero; a success is remembered.
            h = Host {
                ok_accts: h.ok_accts,
                ..Host::default()
            };
        }
        // Only a success and credential events look at the account: hash it for those, by
        // its user part (chan_sip challenges a call as `sip:1001@pbx` and registers it as
        // `1001`). The session only a success and a challenge look at.
        let acct = if weight == Weight::Clear || kind.is_credential() || ev.registrar.is_some() {
            account::key(ev.account)
        } else {
            0
        };
        let sess = if weight == Weight::Clear
            || kind == EventKind::ChallengeSent
            || ev.registrar.is_some()
        {
            account::session(ev.session)
        } else {
            0
        };
        match weight {
            Weight::Clear => {
                // A success takes back what failures against that same account added (the
                // phone that mistyped its own password), never anything else: not failures
                // against other accounts (pjsip-reset-abuse), unknown accounts or ACLs.
                if acct != 0 && h.acct == acct {
                    // Failures of an account that had authenticated from here were counted
                    // apart (`Engine::stale`): nothing of them is in the penalty.
                    if !self.counted_apart(&h, key, acct) {
                        h.penalty = h.penalty.saturating_sub(u32::from(h.acct_penalty));
                    }
                    h.acct = 0;
                    h.acct_penalty = 0;
                    h.sess_penalty = 0;
                } else if sess != 0 && h.sess == sess {
                    // It answers the challenges of its own session, whatever account it
                    // names (chan_sip's call succeeds as the dialled extension). Only
                    // challenges: a session with a failed answer has nothing left to take
                    // back, so reusing a Call-ID never forgives a guess.
                    let back = u32::from(h.sess_penalty).min(h.penalty);
                    h.penalty -= back;
                    h.acct_penalty = h.acct_penalty.saturating_sub(back as u8);
                    h.sess_penalty = 0;
                }
                h.strong = h.strong.min(u16::try_from(h.penalty).unwrap_or(u16::MAX));
                if sess != 0 && h.sess_penalty == 0 {
                    // The registrar's refusal of this same request may follow (`registrar`
                    // below); no challenge of another session is waiting to be taken back.
                    h.sess = sess;
                }
                h.note_login(acct);
                self.table.put_entry(entry, h, now);
                if acct != 0 {
                    let wall = self.wall(now);
                    self.known.learn(
                        key,
                        addr,
                        account::user(ev.account),
                        acct,
                        Source::Login,
                        wall,
                    );
                }
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
                self.table.touch_entry(&entry, now);
                Verdict::Scored(h.penalty)
            }
            _ if ev.registrar.is_some() && sess != 0 && h.sess == sess && h.logged_in(acct) => {
                // The registrar refused a REGISTER that had just authenticated (a contact
                // limit, pjsip-max-contacts): Asterisk's configuration, not an attack.
                self.table.touch_entry(&entry, now);
                self.counters.registrar_refusals += 1;
                let acl = ev.registrar.map_or("", |r| r.name());
                let wall = self.wall(now);
                if self.notes.refused(addr, ev.account, acl, wall) {
                    crate::warn!(
                        "the registrar refused account `{}` from {addr} right after its success ({acl}): not counted; see the AOR's max_contacts and remove_existing",
                        crate::log::printable(ev.account)
                    );
                }
                Verdict::Scored(h.penalty)
            }
            w if kind.is_failure() && self.counted_apart(&h, key, acct) => {
                self.stale(entry, h, w, ev, acct, now)
            }
            w => {
                let strong = ev.evidence == Evidence::Strong;
                let mut next = w.apply(h.penalty);
                if kind == EventKind::InvalidAccountID
                    && self.ban_unknown_account
                    && strong
                    && !h.ever_logged_in()
                {
                    // An unknown account from a host that never logged in: a scanner's
                    // probe. Not on weak evidence: one forged packet would ban anyone.
                    next = next.max(self.limit);
                }
                let added = next - h.penalty;
                let added8 = u8::try_from(added).unwrap_or(u8::MAX);
                if kind.is_credential() && acct != 0 {
                    if h.acct != acct {
                        h.acct = acct;
                        h.acct_penalty = 0;
                    }
                    h.acct_penalty = h.acct_penalty.saturating_add(added8);
                }
                if kind == EventKind::ChallengeSent {
                    if h.sess != sess {
                        h.sess = sess;
                        h.sess_penalty = 0;
                    }
                    if sess != 0 {
                        h.sess_penalty = h.sess_penalty.saturating_add(added8);
                    }
                } else if kind.is_credential() {
                    // A failed answer (in any session: comparing sessions here would cost a
                    // hash per guess): the challenges before it stand.
                    h.sess_penalty = 0;
                }
                if strong {
                    h.strong = h
                        .strong
                        .saturating_add(u16::try_from(added).unwrap_or(u16::MAX));
                }
                h.penalty = next;
                h.events = h.events.saturating_add(1);
                h.scored = now;
                if next < self.limit {
                    self.table.put_entry(entry, h, now);
                    return Verdict::Scored(next);
                }
                self.tipped(entry, h, net, addr)
            }
        }
    }
}

#[cfg(test)]
mod tests;
