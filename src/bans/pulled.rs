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

use super::lock::Held;
use super::{Bans, Lift};
use crate::ban::{Ban, BanRequest, Origin};
use crate::error::Error;
use crate::firewall::{ErrorKind as FwKind, FwError};
use crate::store::{ErrorKind as StoreKind, StoreError};

/// What one batch of decisions changed.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Put in the database and the kernel.
    pub banned: usize,
    /// Already banned here (by any origin): nothing to do.
    pub known: usize,
    /// Left out: `crowdsec_max` active bans from CrowdSec already.
    pub over_max: usize,
    /// Bans from CrowdSec that a deletion lifted.
    pub lifted: usize,
    /// What changed, for the daemon to tell (`Changes`).
    pub changes: super::Changes,
}

impl Bans {
    /// Whether a pull's batch may be applied now: not while the kernel lock is held by an
    /// admin's `-a`, nor while the database refuses writes (the caller reads the stream
    /// again later). The kernel lock is held as long as what this returns is.
    fn may_write(&mut self) -> Result<Held, Error> {
        let Some(held) = self.lock_kernel(false) else {
            let why = "another ampere holds the kernel lock";
            return Err(Error::Firewall(FwError::new(FwKind::Busy, why)));
        };
        if !self.store_writable() {
            return Err(Error::Store(StoreError {
                kind: StoreKind::Busy,
                msg: "the database refuses writes".into(),
            }));
        }
        self.wrote();
        Ok(held)
    }

    /// The number of the latest pull that listed a ban: the next pull's is higher.
    pub fn last_pull(&self) -> Result<i64, StoreError> {
        self.store.last_pull()
    }

    /// Applies a batch of pull number `pull`: `deleted` first, then `new` (each with its
    /// origin `Crowdsec` and its expiry set). A network in both stays banned: a list's order
    /// says nothing of which decision is newer. Fails without changing anything when the
    /// kernel lock is held by an admin's `-a` or the database refuses writes: the caller
    /// reads the stream again later.
    pub fn pulled(
        &mut self,
        new: &mut Vec<BanRequest>,
        deleted: &[IpNet],
        max: usize,
        now: i64,
        pull: i64,
    ) -> Result<Pulled, Error> {
        let _held = self.may_write()?;
        let mut out = Pulled::default();
        // Known already from CrowdSec: listed again, so not ended as unlisted.
        let nets: Vec<IpNet> = new.iter().map(|b| b.net).collect();
        let listed = self
            .store
            .mark_pulled(&nets, pull)
            .inspect_err(|e| self.store_failed(e))?;
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
            let ended = self
                .store
                .end_crowdsec(&deleted, pull)
                .inspect_err(|e| self.store_failed(e))?;
            out.lifted = ended.len();
            out.changes.lifted = self.lift_pulled(&ended, Lift::CrowdsecDeleted);
        }
        if max > 0 && !new.is_empty() {
            let active = self.store.active_count_of(Origin::Crowdsec)?;
            let room = usize::try_from(max as i64 - active).unwrap_or(0);
            if new.len() > room {
                out.over_max = new.len() - room;
                new.truncate(room);
            }
        }
        if new.is_empty() {
            return Ok(out);
        }
        // Each decision lasts as long as LAPI said: nothing escalates.
        let stored = self
            .store
            .record(new, &|_, _| None)
            .inspect_err(|e| self.store_failed(e))?;
        new.clear();
        out.known += stored.iter().filter(|b| b.is_none()).count();
        let todo: Vec<Ban> = stored.into_iter().flatten().collect();
        let nets: Vec<IpNet> = todo.iter().map(|b| b.net).collect();
        self.store
            .mark_pulled(&nets, pull)
            .inspect_err(|e| self.store_failed(e))?;
        // Not marked `just_banned`: that memory (4,096 addresses) is for the daemon's own
        // bans, whose later events in a batch prove nothing.
        let banned = self.put_in_kernel(todo, now, false);
        out.banned = banned.len();
        out.changes.banned = banned;
        Ok(out)
    }

    /// Ends up to `n` bans from CrowdSec that pull `pull`, a whole list, did not hold.
    /// Returns how many, and what changed; fewer than `n` means none is left.
    pub fn unlisted(&mut self, pull: i64, n: usize) -> Result<(usize, super::Changes), Error> {
        let _held = self.may_write()?;
        let ended = self
            .store
            .end_unlisted(pull, n)
            .inspect_err(|e| self.store_failed(e))?;
        let lifted = self.lift_pulled(&ended, Lift::CrowdsecUnlisted);
        Ok((
            ended.len(),
            super::Changes {
                banned: Vec::new(),
                lifted,
            },
        ))
    }

    /// Takes out of the kernel the CrowdSec bans the database just ended.
    fn lift_pulled(&mut self, ended: &[IpNet], why: Lift) -> Vec<(IpNet, Lift)> {
        let mut lifted = Vec::with_capacity(ended.len());
        for (net, r) in ended.iter().zip(self.unapply(ended)) {
            match r {
                Ok(()) => {
                    self.counters.unbans += 1;
                    lifted.push((*net, why));
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    crate::error!(
                        "unban {} ({}): {e}",
                        crate::addr::net_text(net),
                        why.as_str()
                    );
                    self.retry_soon();
                }
            }
        }
        lifted
    }
}
