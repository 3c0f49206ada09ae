//! The kernel lock: whoever changes Ampere's entries in the kernel (the daemon, an admin's
//! `-a`/`-d`) holds an flock on `<database>.lock` while it changes the database and the
//! kernel together. Without it the two drift apart while running: a big `-d` rebuilds the
//! chain or set from a listing, and a ban the daemon added after that listing was gone until
//! the next audit; an audit between an `-a`'s commit and its firewall step removed the
//! admin's bans as strays.
//!
//! The daemon never waits for the lock. A ban it decides while an admin holds it goes into
//! the kernel at once and waits in memory (as in a database outage); once the lock is free
//! it is written and made sure of in the kernel, where the admin's rebuild may have dropped
//! it. Expiry and the audit wait for the lock, retried every `LOCK_RETRY`.
//!
//! flock is not fair: an admin's imports one after the other took the lock again within the
//! few ms between them, and the daemon's try every 50 ms missed those gaps (p99 time to ban 0.7
//! to 3 s in the latency bench's smoke round).
//! So there is a turnstile, `<database>.lock.turn`: whoever wants the lock passes it first.
//! An admin holds the turnstile only while it waits for the lock; the daemon, once it has the
//! turnstile, keeps it until it gets the lock, so the next admin batch waits behind it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Bans;
use crate::addr::net_text;
use crate::debug;
use crate::firewall::{Entry, FwError};
use crate::sys::FileLock;

/// How often the daemon tries again for a lock an admin holds.
pub(super) const LOCK_RETRY: Duration = Duration::from_millis(20);

/// An event from a banned address means the kernel let it through: the ban is made sure of
/// in the kernel, at most this often per address (the events already queued in Asterisk
/// when the ban was made must not each cost a firewall command, nor an attacker's events on
/// a port the ban does not cover).
pub(super) const REAPPLY_EVERY: Duration = Duration::from_secs(1);
/// Addresses whose last re-apply is remembered; beyond, no re-apply until old ones age out
/// (the audit still repairs): memory stays bounded whatever an attacker sends.
const REAPPLY_MAX: usize = 4_096;

/// The lock, held until dropped. `None` inside: the lock file could not be made (its
/// directory is gone); the database is failing then too, and its outage handling applies.
pub(super) struct Held {
    _lock: Option<FileLock>,
}

impl Bans {
    fn lock_path(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}.lock{suffix}", self.store.path()))
    }

    /// Takes the kernel lock; `wait` for it (an admin, the daemon's start) or not (the
    /// daemon's loop: None when another process holds it, retried after `LOCK_RETRY`).
    pub(super) fn lock_kernel(&mut self, wait: bool) -> Option<Held> {
        match self.take_lock(wait) {
            Ok(Some(l)) => {
                self.lock_wait = None;
                Some(Held { _lock: Some(l) })
            }
            Ok(None) => {
                debug!("another ampere changes the bans now; trying again shortly");
                self.lock_wait = Some(Instant::now() + LOCK_RETRY);
                None
            }
            Err(e) => {
                self.turn = None;
                let path = self.lock_path("");
                debug!("{}: {e}; going on without the lock", path.display());
                Some(Held { _lock: None })
            }
        }
    }

    /// Through the turnstile, then the lock (see the module's comment).
    fn take_lock(&mut self, wait: bool) -> std::io::Result<Option<FileLock>> {
        if self.turn.is_none() {
            match FileLock::take(&self.lock_path(".turn"), wait)? {
                Some(t) => self.turn = Some(t),
                None => return Ok(None),
            }
        }
        let lock = FileLock::take(&self.lock_path(""), wait)?;
        if lock.is_some() {
            self.turn = None;
        }
        Ok(lock)
    }

    /// Whether the daemon is waiting for the lock until a time still to come.
    pub(super) fn lock_blocked(&self, now: Instant) -> bool {
        self.lock_wait.is_some_and(|t| now < t)
    }

    /// Makes sure the kernel holds `bans` without ever adding one twice: one batch where the
    /// backend's adds are idempotent, else one check for one ban and one listing for more
    /// (with iptables at 100,000 rules, each `-C` costs as much as a listing).
    pub(super) fn ensure_held(&self, bans: &[Entry], now: i64) -> Vec<Result<(), FwError>> {
        if self.fw.adds_idempotently() {
            return self.apply(bans, now);
        }
        if bans.len() > 1 {
            if let Ok(listed) = self.fw.list() {
                let held: std::collections::HashSet<IpNet> = listed.into_iter().collect();
                let missing: Vec<usize> = (0..bans.len())
                    .filter(|&i| !held.contains(&bans[i].net))
                    .collect();
                let batch: Vec<Entry> = missing.iter().map(|&i| bans[i]).collect();
                let mut out: Vec<Result<(), FwError>> = bans.iter().map(|_| Ok(())).collect();
                for (&i, r) in missing.iter().zip(self.apply(&batch, now)) {
                    out[i] = r;
                }
                return out;
            }
        }
        bans.iter().map(|b| self.fw.ensure(b, now)).collect()
    }

    /// Events came from addresses the database lists as banned (`known`): the kernel did not
    /// drop them (a flushed chain, a rebuild that raced): make sure it holds them, as
    /// stored (with their remaining time), at most once per `REAPPLY_EVERY` per address.
    /// Called with the lock held.
    pub(super) fn reapply(&mut self, known: &[IpNet], now: i64) {
        let at = Instant::now();
        let due: Vec<Entry> = known
            .iter()
            .filter(|n| claim(&mut self.reapplied, **n, at))
            .filter_map(|n| match self.store.active_ban(n) {
                Ok(b) => b.map(|b| b.entry()),
                // Unknown: as the ban that may wait in memory holds it, or permanent.
                Err(_) => Some(self.unstored.iter().find(|u| u.held.net == *n).map_or(
                    Entry {
                        net: *n,
                        expires: None,
                    },
                    |u| u.held,
                )),
            })
            .collect();
        if due.is_empty() {
            return;
        }
        for (b, r) in due.iter().zip(self.ensure_held(&due, now)) {
            match r {
                Ok(()) => debug!(
                    "{} is banned but an event came from it: the kernel holds it now",
                    net_text(&b.net)
                ),
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    crate::error!("re-applying the ban of {}: {e}", net_text(&b.net));
                    // The chain, set or table may be gone: the audit makes it again.
                    self.retry_soon();
                }
            }
        }
    }

    /// The daemon just put `net` in the kernel: the events Asterisk had queued from it
    /// by then cost no re-apply.
    pub(super) fn just_banned(&mut self, net: IpNet) {
        claim(&mut self.reapplied, net, Instant::now());
    }
}

/// Whether `net` may be re-applied at `at` (not within `REAPPLY_EVERY` of the last time, and
/// room to remember it); if so, remembers `at`.
fn claim(map: &mut HashMap<IpNet, Instant>, net: IpNet, at: Instant) -> bool {
    if map
        .get(&net)
        .is_some_and(|t| at.duration_since(*t) < REAPPLY_EVERY)
    {
        return false;
    }
    if map.len() >= REAPPLY_MAX && !map.contains_key(&net) {
        map.retain(|_, t| at.duration_since(*t) < REAPPLY_EVERY);
        if map.len() >= REAPPLY_MAX {
            return false;
        }
    }
    map.insert(net, at);
    true
}
