//! Decisions pulled from CrowdSec's Local API, through the same rule as every other ban:
//! the database first, then the kernel, under the kernel lock. Applying one twice changes
//! nothing (a stream read again from its start is harmless), a deleted decision lifts only
//! a ban that came from CrowdSec, and `crowdsec_max` bounds how many LAPI can hold at once.
//!
//! Each pull has a number, stored with the bans it lists (`pulled`): a deletion ends only a
//! ban listed by an earlier pull, so no order of the lists within one answer undoes a newer
//! decision, and after a whole list (`startup=true`) the bans it did not hold are ended.

use std::collections::HashSet;

use ipnet::IpNet;

use super::Bans;
use crate::addr::net_text;
use crate::ban::Ban;
use crate::{error, info};

/// What one batch of decisions changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pulled {
    /// Put in the database and the kernel.
    pub banned: usize,
    /// Already banned here (by any origin): nothing to do.
    pub known: usize,
    /// Left out: `crowdsec_max` active bans from CrowdSec already.
    pub over_max: usize,
    /// Bans from CrowdSec that a deletion lifted.
    pub lifted: usize,
}

impl Bans {
    /// The number of the latest pull that listed a ban: the next pull's is higher.
    pub fn last_pull(&self) -> Result<i64, String> {
        self.store.last_pull().map_err(|e| e.to_string())
    }

    /// Applies a batch of pull number `pull`: `deleted` first, then `new` (each with its
    /// origin `Crowdsec` and its expiry set). A network in both stays banned: a list's order
    /// says nothing of which decision is newer. Fails without changing anything when the
    /// kernel lock is held by an admin's `-a` or the database refuses writes: the caller
    /// reads the stream again later.
    pub fn pulled(
        &mut self,
        new: &mut Vec<Ban>,
        deleted: &[IpNet],
        max: usize,
        now: i64,
        pull: i64,
    ) -> Result<Pulled, String> {
        let Some(_held) = self.lock_kernel(false) else {
            return Err("another ampere holds the kernel lock".into());
        };
        if !self.store_writable() {
            return Err("the database refuses writes".into());
        }
        self.wrote();
        let mut out = Pulled::default();
        // Known already from CrowdSec: listed again, so not ended as unlisted.
        let nets: Vec<IpNet> = new.iter().map(|b| b.net).collect();
        let listed = self.store.mark_pulled(&nets, pull).map_err(|e| {
            self.store_failed(&e);
            e.to_string()
        })?;
        let mut listed = listed.into_iter();
        new.retain(|_| !listed.next().unwrap_or(false));
        out.known = nets.len() - new.len();
        if !deleted.is_empty() {
            let nets: HashSet<IpNet> = nets.into_iter().collect();
            let deleted: Vec<IpNet> = deleted
                .iter()
                .filter(|n| !nets.contains(n))
                .copied()
                .collect();
            let ended = self.store.end_crowdsec(&deleted, pull).map_err(|e| {
                self.store_failed(&e);
                e.to_string()
            })?;
            self.lift_pulled(&ended, "CrowdSec deleted its decision");
            out.lifted = ended.len();
        }
        if max > 0 && !new.is_empty() {
            let active = self
                .store
                .active_crowdsec_count()
                .map_err(|e| e.to_string())?;
            let room = usize::try_from(max as i64 - active).unwrap_or(0);
            if new.len() > room {
                out.over_max = new.len() - room;
                new.truncate(room);
            }
        }
        if new.is_empty() {
            return Ok(out);
        }
        let fresh = self.store.record(new, &|b| b.expires).map_err(|e| {
            self.store_failed(&e);
            e.to_string()
        })?;
        out.known += fresh.iter().filter(|f| !**f).count();
        let todo: Vec<Ban> = new
            .drain(..)
            .zip(fresh)
            .filter_map(|(b, f)| f.then_some(b))
            .collect();
        let nets: Vec<IpNet> = todo.iter().map(|b| b.net).collect();
        self.store.mark_pulled(&nets, pull).map_err(|e| {
            self.store_failed(&e);
            e.to_string()
        })?;
        for (b, r) in todo.iter().zip(self.apply(&todo, now)) {
            if let Some(e) = b.expires {
                self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
            }
            match r {
                Ok(()) => {
                    // Not marked `just_banned`: that memory (4,096 addresses) is for the
                    // daemon's own bans, whose later events in a batch prove nothing.
                    self.counters.bans += 1;
                    out.banned += 1;
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    error!(
                        "ban {} (CrowdSec) recorded, but the firewall failed (retried by the audit): {e}",
                        net_text(&b.net)
                    );
                    self.retry_soon();
                }
            }
        }
        Ok(out)
    }

    /// Ends up to `n` bans from CrowdSec that pull `pull`, a whole list, did not hold.
    /// Returns how many; fewer than `n` means none is left.
    pub fn unlisted(&mut self, pull: i64, n: usize) -> Result<usize, String> {
        let Some(_held) = self.lock_kernel(false) else {
            return Err("another ampere holds the kernel lock".into());
        };
        if !self.store_writable() {
            return Err("the database refuses writes".into());
        }
        self.wrote();
        let ended = self.store.end_unlisted(pull, n).map_err(|e| {
            self.store_failed(&e);
            e.to_string()
        })?;
        self.lift_pulled(&ended, "no longer in CrowdSec's list");
        Ok(ended.len())
    }

    /// Takes out of the kernel the CrowdSec bans the database just ended.
    fn lift_pulled(&mut self, ended: &[IpNet], why: &str) {
        for (net, r) in ended.iter().zip(self.unapply(ended)) {
            match r {
                Ok(()) => {
                    self.counters.unbans += 1;
                    info!("unban {}: {why}", net_text(net));
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    error!("unban {} ({why}): {e}", net_text(net));
                    self.retry_soon();
                }
            }
        }
    }
}
