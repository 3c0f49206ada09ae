//! Subnet escalation: `subnet_after` distinct daemon bans inside one `subnet_v4`/`subnet_v6`
//! network within `findtime` ban that network, and the member bans are folded into it (the
//! kernel holds one entry; the database keeps the members' rows, inactive, naming the
//! subnet). The subnet's own count escalates its ban time like any ban's. Bans on weak
//! evidence (`score::Evidence`) never count. A subnet that
//! takes in a protected network (trust, the AMI host, loopback) or a LAN address is never
//! banned.
//!
//! The recent bans per subnet are kept in memory (bounded): a restart starts counting anew.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{Bans, Changes, Lift};
use crate::addr::{net_text, scored_alone};
use crate::admission::{Admission, Door};
use crate::ban::{Ban, BanRequest, Lifetime, Origin};
use crate::config::Config;
use crate::score::Evidence;
use crate::{error, info};

/// Subnets tracked at once; past that, the one whose latest ban is oldest is forgotten.
/// Each holds fewer than `subnet_after` (at most 32) members: under 5 MiB at worst.
const MAX_SUBNETS: usize = 4096;

/// Recent daemon bans per subnet: (member, unix time of its ban).
#[derive(Default)]
pub(super) struct Recent(HashMap<IpNet, Vec<(IpNet, i64)>>);

impl Recent {
    /// Notes `member` banned at `at` inside `subnet`; returns the distinct members banned
    /// within `findtime` of `at`, this one included.
    fn note(&mut self, subnet: IpNet, member: IpNet, at: i64, findtime: u64) -> Vec<IpNet> {
        if !self.0.contains_key(&subnet) && self.0.len() >= MAX_SUBNETS {
            let oldest = self
                .0
                .iter()
                .min_by_key(|(_, v)| v.iter().map(|m| m.1).max())
                .map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.0.remove(&s);
            }
        }
        let since = at.saturating_sub(findtime as i64);
        let v = self.0.entry(subnet).or_default();
        v.retain(|(m, t)| *t > since && *m != member);
        v.push((member, at));
        v.iter().map(|m| m.0).collect()
    }
}

/// The escalation subnet of `net`, if it is narrower than that and not a LAN network.
fn subnet_of(cfg: &Config, net: &IpNet) -> Option<IpNet> {
    let len = if crate::addr::is_v6(net) {
        cfg.subnet_v6
    } else {
        cfg.subnet_v4
    };
    if net.prefix_len() <= len || scored_alone(net.network()) {
        return None;
    }
    Some(IpNet::new(net.network(), len).ok()?.trunc())
}

impl Bans {
    /// A ban inside an active escalation subnet is that subnet's: the kernel needs no
    /// entry of its own for it (an nft interval set would refuse one), and an event from
    /// inside is proof that the subnet's entry is to be made sure of (`reapply`).
    pub(super) fn fold_covered(&self, cfg: &Config, pending: &mut [BanRequest]) {
        for b in pending.iter_mut() {
            if let Some(s) = subnet_of(cfg, &b.net) {
                if self.store.is_banned(&s).unwrap_or(false) {
                    b.net = s;
                }
            }
        }
    }

    /// After `flush`: the subnets that `banned` (the bans just made) tipped over
    /// `subnet_after` are banned, at the time of the ban that tipped them, and their
    /// members folded in, where the admission check lets the subnet in.
    pub fn escalate(&mut self, cfg: &Config, banned: &[Ban], admission: &Admission) -> Changes {
        let mut out = Changes::default();
        if cfg.subnet_after == 0 {
            return out;
        }
        let mut due = Vec::new();
        // Never on weak evidence: forged packets from three addresses of a /24 would ban
        // the /24 (pjsip-forged-source).
        for b in banned
            .iter()
            .filter(|b| b.origin == Origin::Daemon && b.evidence == Evidence::Strong)
        {
            let Some(subnet) = subnet_of(cfg, &b.net) else {
                continue;
            };
            let members = self.recent.note(subnet, b.net, b.since, cfg.findtime);
            if members.len() >= cfg.subnet_after {
                self.recent.0.remove(&subnet);
                due.push((subnet, members, b.since));
            }
        }
        for (subnet, members, now) in due {
            if let Err(why) = admission.check(&subnet, Door::Subnet) {
                info!(
                    "{} bans inside {}, but it is not banned as a whole: it {why}",
                    members.len(),
                    net_text(&subnet),
                );
                continue;
            }
            self.ban_subnet(cfg, subnet, &members, now, &mut out);
        }
        out
    }

    fn ban_subnet(
        &mut self,
        cfg: &Config,
        subnet: IpNet,
        members: &[IpNet],
        now: i64,
        out: &mut Changes,
    ) {
        let Some(_held) = self.lock_kernel(false) else {
            return;
        };
        if !self.store_writable() {
            return;
        }
        // The members it takes the place of: the events that raised it.
        let request = BanRequest {
            events: members.len() as u32,
            ..BanRequest::new(subnet, Origin::Daemon, "subnet", now, Lifetime::Escalating)
        };
        self.wrote();
        let recorded = self
            .store
            .record(std::slice::from_ref(&request), &|at, count| {
                cfg.ban_expiry(at, count)
            })
            .and_then(|mut stored| match stored.pop().flatten() {
                Some(ban) => {
                    let folded = self.store.fold_into(members, &subnet, ban.expires)?;
                    Ok(Some((ban, folded)))
                }
                None => Ok(None),
            });
        let (ban, folded) = match recorded {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err(e) => {
                self.store_failed(&e);
                return;
            }
        };
        if let Some(e) = ban.expires {
            self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
        }
        // The subnet first, so that the members are never let through; an nft interval set
        // refuses a network over a member network it holds: then the members go first.
        let mut result = self.fw.ban(&ban.entry(), now);
        if result.is_err() && !folded.is_empty() {
            let _ = self.fw.unban_many(&folded);
            result = self.fw.ban(&ban.entry(), now);
        } else if !folded.is_empty() {
            if let Err(e) = self.fw.unban_many(&folded) {
                // Inactive rows: the audit takes the entries out.
                self.counters.firewall_errors += 1;
                error!(
                    "folding {} ban(s) into {}: {e}",
                    folded.len(),
                    net_text(&subnet)
                );
                self.retry_soon();
            }
        }
        match result {
            Ok(()) => {
                self.counters.bans += 1;
                self.counters.subnets += 1;
                self.just_banned(subnet);
                out.banned.push(ban);
            }
            Err(e) => {
                self.counters.firewall_errors += 1;
                error!(
                    "ban {} recorded, but the firewall failed (retried by the audit): {e}",
                    net_text(&subnet)
                );
                self.retry_soon();
            }
        }
        self.counters.unbans += folded.len() as u64;
        out.lifted
            .extend(folded.into_iter().map(|m| (m, Lift::Folded(subnet))));
    }
}
