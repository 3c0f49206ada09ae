//! What the engine decides of an event (`Verdict`), and the ban a host that reached the
//! limit may get, as far as its evidence goes (`Tipped`, `WeakBan`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::Engine;
use crate::event::SecurityEvent;
use crate::score::Weight;
use crate::table::{Entry, Host};

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
    /// The limit was reached: the host is out of the table and is to be banned.
    Ban(Tipped),
}

/// A host that reached the limit, and what its ban may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tipped {
    pub penalty: u32,
    /// What is banned: the address's prefix, or the address alone (`Engine::key_of`); the
    /// address alone when the ban rests on weak evidence.
    pub net: IpNet,
    /// The events that raised the penalty.
    pub events: u32,
    /// None: strong evidence alone reached the limit (a ban as the config says). Some: the
    /// ban rests on evidence a forged packet can make (`score::Evidence`).
    pub weak: Option<WeakBan>,
}

/// A ban on weak evidence: temporary (at most `ceiling` seconds), of one address, never
/// counted toward `permanent_after`, never spread to a subnet or to CrowdSec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeakBan {
    pub ceiling: u64,
    /// The host had proved itself (a login, a trunk): `weak_known_bantime` applies, and
    /// the log says so loudly.
    pub known: bool,
    /// An account failing from an address it logged in from before (a device with an old
    /// password): counted apart, against `stale_password_limit`.
    pub stale: bool,
}

impl Engine {
    /// `h` (at `entry`, scored as `net`) reached the limit from `addr`: the ban it gets, as
    /// far as its evidence goes.
    pub(super) fn tipped(&mut self, entry: Entry, h: Host, net: IpNet, addr: IpAddr) -> Verdict {
        let (penalty, events) = (h.penalty, u32::from(h.events));
        if u32::from(h.strong) >= self.limit.min(u32::from(u16::MAX)) {
            self.table.remove_entry(entry);
            self.counters.ban_decisions += 1;
            return Verdict::Ban(Tipped {
                penalty,
                net,
                events,
                weak: None,
            });
        }
        if events < 2 {
            // One forgeable packet never bans (a weight at the limit, set by the admin):
            // the next event from the host decides.
            self.counters.weak_single += 1;
            self.table.put_entry(entry, h, h.scored);
            return Verdict::Scored(penalty);
        }
        let known = self.known.mark(net.network()).is_some_and(|m| m.proved);
        if h.strong == 0 {
            self.table.remove_entry(entry);
        } else {
            // What strong evidence added stays: the attacker's next strong event bans it
            // for good, as without the weak ones.
            let strong = u32::from(h.strong);
            let h = Host {
                penalty: strong,
                acct_penalty: h.acct_penalty.min(u8::try_from(strong).unwrap_or(u8::MAX)),
                sess_penalty: 0,
                ..h
            };
            self.table.put_entry(entry, h, h.scored);
        }
        self.counters.ban_decisions += 1;
        self.counters.weak_bans += 1;
        self.counters.weak_known_bans += u64::from(known);
        Verdict::Ban(Tipped {
            penalty,
            net: IpNet::from(addr),
            events,
            weak: Some(WeakBan {
                ceiling: if known {
                    self.weak_known_bantime
                } else {
                    self.weak_bantime
                },
                known,
                stale: false,
            }),
        })
    }

    /// A wrong password for `acct`, an account that authenticated from this host before (a
    /// device whose password changed; its phone keeps registering the other lines): counted
    /// apart from the host's penalty, against `stale_password_limit`, and at worst a short
    /// ban of the address, named loudly. A guesser's target never logged in from there
    /// (`pjsip-reset-abuse`): that takes the ordinary path.
    pub(super) fn stale(
        &mut self,
        entry: Entry,
        mut h: Host,
        w: Weight,
        ev: &SecurityEvent<'_>,
        acct: u32,
        now: u64,
    ) -> Verdict {
        let added = w.apply(h.penalty) - h.penalty;
        if h.acct != acct {
            h.acct = acct;
            h.acct_penalty = 0;
        }
        h.acct_penalty = h
            .acct_penalty
            .saturating_add(u8::try_from(added).unwrap_or(u8::MAX));
        h.sess_penalty = 0;
        h.scored = now;
        self.counters.stale_failures += 1;
        let addr = ev.addr();
        let wall = self.wall(now);
        if self.notes.stale_failure(addr, ev.account, wall) {
            crate::warn!(
                "account `{}` fails from {addr}, where it logged in before: a device with an old password? Counted apart (a ban of {} s at most, after {} points)",
                crate::log::printable(ev.account),
                self.weak_known_bantime,
                self.stale_limit
            );
        }
        let reached = u32::from(h.acct_penalty);
        if reached < self.stale_limit {
            self.table.put_entry(entry, h, now);
            return Verdict::Scored(h.penalty);
        }
        h.acct_penalty = 0;
        self.table.put_entry(entry, h, now);
        self.counters.ban_decisions += 1;
        self.counters.stale_bans += 1;
        Verdict::Ban(Tipped {
            penalty: reached,
            net: IpNet::from(addr),
            events: self.notes.stale_banned(addr, ev.account),
            weak: Some(WeakBan {
                ceiling: self.weak_known_bantime,
                known: true,
                stale: true,
            }),
        })
    }
}
