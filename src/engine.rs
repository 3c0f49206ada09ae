//! The decision core shared by the daemon and `--replay`: event in, verdict out. It owns the
//! penalty table and knows the weights, the limit, the decay and who is protected; it
//! touches neither the firewall nor the database.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ami::same_name;
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
    /// The limit was reached with this penalty; the network (the address's prefix, or the
    /// address alone: `Engine::key_of`) is out of the table and is to be banned; the
    /// number of events that raised the penalty.
    Ban(u32, IpNet, u32),
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
            .position(|(s, _)| same_name(s.as_bytes(), service))
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
    /// `ipv4_prefix`, `ipv6_prefix`: how wide a network one penalty counts for.
    prefix_v4: u8,
    prefix_v6: u8,
    /// Protected networks already named in the log for narrowing a prefix (at most one
    /// entry per protected network).
    warned_overlap: Vec<IpNet>,
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
            prefix_v4: 32,
            prefix_v6: 128,
            warned_overlap: Vec::new(),
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
        let named = self.guard.named().to_vec();
        self.guard = Guard::new(&cfg.trust, &cfg.host);
        self.guard.set_peer(peer);
        self.guard.set_named(&named);
        self.ban_unknown_account = cfg.ban_unknown_account;
        self.prefix_v4 = cfg.ipv4_prefix;
        self.prefix_v6 = cfg.ipv6_prefix;
        self.warned_overlap.clear();
    }

    /// The `ipv4_prefix`/`ipv6_prefix` network of `addr`; a LAN address stays single
    /// (`addr::is_lan`).
    fn prefix_of(&self, addr: IpAddr) -> IpNet {
        if crate::addr::is_lan(addr) {
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
        match self.guard.overlaps(&net) {
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
                "{} takes in the protected {}: addresses there are scored and banned one by one (logged once)",
                crate::addr::net_text(&self.prefix_of(addr)),
                crate::addr::net_text(&p)
            );
        }
        key
    }

    /// An account as the table keeps it: a hash, 0 for none. The same in every process, so
    /// that the Bloom filter's false positives (`Host::logged_in`) fall on the same accounts
    /// in every run and `--replay` judges a capture as the daemon does. A secret key would
    /// buy little: a collision only makes challenges free for accounts of the same source
    /// address, never its failed passwords.
    fn account_key(&self, account: &[u8]) -> u32 {
        if account.is_empty() {
            return 0;
        }
        // FNV-1a: short names, and SipHash cost as much as the rest of scoring.
        let h = account.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        ((h ^ (h >> 32)) as u32).max(1)
    }

    /// The address Ampere is connected to for AMI (resolved anew at each connect).
    pub fn set_ami_peer(&mut self, peer: Option<IpAddr>) {
        if peer != self.ami_peer {
            self.ami_peer = peer;
            self.guard.set_peer(peer);
        }
    }

    /// The addresses the `trust = NAME` entries resolve to now.
    pub fn set_trusted_names(&mut self, nets: &[IpNet]) {
        self.guard.set_named(nets);
    }

    pub fn table(&self) -> &PenaltyTable {
        &self.table
    }

    /// The protected network (trust, the AMI host, loopback) that `net` takes in, if any.
    pub fn overlaps(&self, net: &IpNet) -> Option<IpNet> {
        self.guard.overlaps(net)
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
        self.guard.networks()
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
            .any(|s| same_name(s.as_bytes(), service))
        {
            self.counters.ignored_service += 1;
            return Verdict::IgnoredService;
        }
        if self.guard.protects(addr).is_some() {
            self.counters.protected += 1;
            return Verdict::Protected;
        }
        let net = self.key_logged(addr);
        // The table is keyed by the network's first address: within one prefix every
        // address narrows or none does, so a prefix and a single address never share a key.
        let key = net.network();
        let weight = self.weights.get(kind);
        let (entry, known) = self.table.entry(key);
        let mut h = known.unwrap_or_default();
        if now.saturating_sub(h.scored) >= self.findtime {
            // Quiet for `findtime`: the penalty starts from zero; a success is remembered.
            h = Host {
                ok_accts: h.ok_accts,
                ..Host::default()
            };
        }
        // Only a success and credential events look at the account: hash it for those.
        let acct = if weight == Weight::Clear || kind.is_credential() {
            self.account_key(ev.account)
        } else {
            0
        };
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
                self.table.put_entry(entry, h, now);
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
                h.events = h.events.saturating_add(1);
                h.scored = now;
                if next >= self.limit {
                    self.table.remove_entry(entry);
                    self.counters.ban_decisions += 1;
                    Verdict::Ban(next, net, h.events)
                } else {
                    self.table.put_entry(entry, h, now);
                    Verdict::Scored(next)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
