//! Subnet escalation: `subnet_after` distinct daemon bans inside one `subnet_v4`/`subnet_v6`
//! network within `findtime` ban that network, and the member bans are folded into it (the
//! kernel holds one entry; the database keeps the members' rows, inactive, naming the
//! subnet). The subnet's own count escalates its ban time like any ban's. A subnet that
//! takes in a protected network (trust, the AMI host, loopback) or a LAN address is never
//! banned.
//!
//! The recent bans per subnet are kept in memory (bounded): a restart starts counting anew.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{Bans, Flushed};
use crate::addr::{is_lan, net_text};
use crate::ban::{Ban, Origin};
use crate::config::Config;
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
    if net.prefix_len() <= len || is_lan(net.network()) {
        return None;
    }
    Some(IpNet::new(net.network(), len).ok()?.trunc())
}

impl Bans {
    /// A ban inside an active escalation subnet is that subnet's: the kernel needs no
    /// entry of its own for it (an nft interval set would refuse one), and an event from
    /// inside is proof that the subnet's entry is to be made sure of (`reapply`).
    pub(super) fn fold_covered(&self, cfg: &Config, pending: &mut [Ban]) {
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
    /// members folded in. `protected` names the protected network a subnet would take in,
    /// if any.
    pub fn escalate(
        &mut self,
        cfg: &Config,
        banned: &[Ban],
        protected: &dyn Fn(&IpNet) -> Option<IpNet>,
    ) -> Flushed {
        let mut out = Flushed::default();
        if cfg.subnet_after == 0 {
            return out;
        }
        let mut due = Vec::new();
        for b in banned.iter().filter(|b| b.origin == Origin::Daemon) {
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
            if let Some(p) = protected(&subnet) {
                info!(
                    "{} bans inside {} but it takes in the protected {}: not banned as a whole",
                    members.len(),
                    net_text(&subnet),
                    net_text(&p)
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
        out: &mut Flushed,
    ) {
        let Some(_held) = self.lock_kernel(false) else {
            return;
        };
        if !self.store_writable() {
            return;
        }
        let list: Vec<String> = members.iter().map(net_text).collect();
        let mut ban = Ban::new(subnet, "subnet", "", 0, Origin::Daemon, now);
        self.wrote();
        let recorded = self
            .store
            .record(std::slice::from_mut(&mut ban), &|b| {
                cfg.ban_expiry(b.since, b.count)
            })
            .and_then(|fresh| {
                let folded = if fresh[0] {
                    self.store.fold_into(members, &subnet, ban.expires)?
                } else {
                    Vec::new()
                };
                Ok((fresh[0], folded))
            });
        let folded = match recorded {
            Ok((true, folded)) => folded,
            Ok((false, _)) => return,
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
        let mut result = self.fw.ban(&ban, now);
        if result.is_err() && !folded.is_empty() {
            let _ = self.fw.unban_many(&folded);
            result = self.fw.ban(&ban, now);
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
                info!(
                    "ban {}: subnet of {} bans within findtime ({}); ban #{} {}",
                    net_text(&subnet),
                    members.len(),
                    list.join(" "),
                    ban.count,
                    ban.until()
                );
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
        for m in &folded {
            self.counters.unbans += 1;
            info!("unban {}: folded into {}", net_text(m), net_text(&subnet));
        }
        out.lifted.extend(folded);
    }
}
