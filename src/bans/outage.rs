//! When the database refuses writes (disk full, read-only, its directory deleted, or locked
//! by an admin's bulk `-a`), bans go on in the kernel: they wait in memory (`unstored`),
//! expire from there if their time comes first, and are written from the loop as soon as
//! the database takes writes again. A database file that was deleted or replaced is opened
//! again at its path; the next audit then adopts what the kernel holds instead of removing it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Bans, Lift};
use crate::addr::net_text;
use crate::ban::{Ban, BanRequest, Lifetime, Origin};
use crate::config::Config;
use crate::firewall::Entry;
use crate::store::{ErrorKind, Store, StoreError};
use crate::{debug, error, info, warn};

/// Bans kept in memory at most while the database is down (about 150 bytes each); beyond
/// that they are only in the kernel, and the first audit after the outage adopts them.
pub(super) const MAX_UNSTORED: usize = 10_000;

/// The daemon's wait for another connection's lock; then it retries from the loop.
pub(super) const DAEMON_BUSY_MS: i32 = 20;

/// Retries of a locked database start fast (an admin's import commits every few ms); any
/// other failure is retried from a second on, doubling up to a minute.
const BUSY_FIRST: Duration = Duration::from_millis(50);
const BUSY_MAX: Duration = Duration::from_secs(1);
const DOWN_FIRST: Duration = Duration::from_secs(1);
const DOWN_MAX: Duration = Duration::from_secs(60);

/// The database refuses writes since `since`.
pub(super) struct Outage {
    since: Instant,
    retry_at: Instant,
    backoff: Duration,
    /// The error was logged loudly (once per outage; a short lock is not worth it).
    loud: bool,
}

impl Outage {
    pub(super) fn retry_at(&self) -> Instant {
        self.retry_at
    }
}

/// A ban the kernel holds that the database has not taken yet: what is to be stored, and
/// what the kernel was given meanwhile (timed as a first ban: the count is the database's
/// to tell).
#[derive(Clone, Debug)]
pub(super) struct Unstored {
    pub(super) request: BanRequest,
    pub(super) held: Entry,
}

impl Bans {
    /// A write failed: retry from the loop, backing off; say so loudly once per outage.
    pub(super) fn store_failed(&mut self, e: &StoreError) {
        self.counters.store_errors += 1;
        let now = Instant::now();
        let busy = e.kind == ErrorKind::Busy;
        let (first, max) = if busy {
            (BUSY_FIRST, BUSY_MAX)
        } else {
            (DOWN_FIRST, DOWN_MAX)
        };
        let o = self.outage.get_or_insert(Outage {
            since: now,
            retry_at: now,
            backoff: first,
            loud: false,
        });
        o.retry_at = now + o.backoff;
        o.backoff = (o.backoff * 2).clamp(first, max);
        if !busy && !o.loud {
            o.loud = true;
            // The error names the database file already.
            error!("{e}; bans go on in the kernel and are written when it takes writes again");
        } else {
            debug!("{e}; retrying");
        }
    }

    fn store_ok(&mut self) {
        if let Some(o) = self.outage.take() {
            let took = o.since.elapsed().as_secs_f64();
            if o.loud {
                warn!(
                    "database {} takes writes again after {took:.1} s",
                    self.store.path()
                );
            }
        }
    }

    /// Whether to write now: not while backing off, and not to a file that was deleted or
    /// replaced (reopened at its path first).
    pub(super) fn store_writable(&mut self) -> bool {
        if self
            .outage
            .as_ref()
            .is_some_and(|o| Instant::now() < o.retry_at)
        {
            return false;
        }
        !self.store.has_moved() || self.reopen_moved()
    }

    /// Opens the database again at its path after it was deleted or replaced; the next
    /// audit (due at once) adopts what the kernel holds.
    fn reopen_moved(&mut self) -> bool {
        let path = self.store.path().to_string();
        match reopen(&path) {
            Ok(store) => {
                error!("database {path} was deleted or replaced while Ampere ran: made it again; the next audit adopts the bans the kernel holds");
                self.store = store;
                self.adopt = true;
                self.audit_due = Instant::now();
                true
            }
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    /// At a stop: a database deleted or replaced since the last audit adopts what the
    /// kernel holds now. The next start adopts the kernel's bans into a database it makes
    /// new, but not into one this daemon made again a moment before the stop.
    pub fn before_stop(&mut self, cfg: &Config, now: i64) {
        self.end_survey();
        if self.store.has_moved() {
            self.reopen_moved();
        }
        if self.adopt {
            self.audit(cfg, now);
        }
    }

    /// `Store::record` of `requests` (each escalating by `cfg` from the time it was
    /// decided), if the database may be written now; its outcome goes into the outage's
    /// state. None when nothing was written.
    fn write(&mut self, cfg: &Config, requests: &[BanRequest]) -> Option<Vec<Option<Ban>>> {
        if !self.store_writable() {
            return None;
        }
        self.wrote();
        match self
            .store
            .record(requests, &|at, count| cfg.ban_expiry(at, count))
        {
            Ok(stored) => {
                self.store_ok();
                Some(stored)
            }
            Err(e) => {
                self.store_failed(&e);
                None
            }
        }
    }

    /// Writes `requests`; if the database refuses, or the kernel lock is another process's
    /// (`locked` false), the new ones wait in memory, timed as first bans. Returns per
    /// request the ban it became (stored, or waiting), or None when its network is banned
    /// already (as `Store::record` does).
    pub(super) fn record(
        &mut self,
        cfg: &Config,
        requests: &[BanRequest],
        locked: bool,
    ) -> Vec<Option<Ban>> {
        // Already waiting: the kernel holds them.
        let mut waiting: HashSet<IpNet> = self.unstored.iter().map(|u| u.request.net).collect();
        if let Some(stored) = locked.then(|| self.write(cfg, requests)).flatten() {
            return stored
                .into_iter()
                .map(|b| b.filter(|b| !waiting.contains(&b.net)))
                .collect();
        }
        requests
            .iter()
            .map(|r| {
                // A read may still work (a full disk, a lock): a stored ban is not new.
                if !waiting.insert(r.net) || self.store.is_banned(&r.net).unwrap_or(false) {
                    return None;
                }
                let ban = r.settle(0, r.at, &|at, count| cfg.ban_expiry(at, count));
                if self.unstored.len() < MAX_UNSTORED {
                    self.unstored.push(Unstored {
                        request: r.clone(),
                        held: ban.entry(),
                    });
                } else {
                    self.counters.unstored_dropped += 1;
                    self.adopt = true;
                }
                Some(ban)
            })
            .collect()
    }

    /// Whether waiting bans are to be written or lifted now.
    pub(super) fn outage_due(&self, now: Instant, epoch: i64, clock_set: bool) -> bool {
        !self.unstored.is_empty()
            && (self.outage.as_ref().is_none_or(|o| now >= o.retry_at)
                || (clock_set
                    && self
                        .unstored
                        .iter()
                        .any(|u| u.held.expires.is_some_and(|e| e <= epoch))))
    }

    /// When the waiting bans are next written, or one of them expires.
    /// (The caller asks only while some wait.)
    pub(super) fn outage_wake(&self, epoch_ms: i64, now: Instant) -> Instant {
        let retry = self.outage.as_ref().map_or(now, |o| o.retry_at);
        let expiry = self.unstored.iter().filter_map(|u| u.held.expires).min();
        match expiry.filter(|_| crate::clock::is_set(epoch_ms / 1000)) {
            Some(e) => retry.min(now + super::until(e, epoch_ms)),
            None => retry,
        }
    }

    /// From the loop: waiting bans whose time is up are lifted (they never reached the
    /// database), the rest written if the database takes them now. Returns what was lifted.
    pub(super) fn outage_timers(
        &mut self,
        cfg: &Config,
        epoch: i64,
        clock_set: bool,
    ) -> Vec<(IpNet, Lift)> {
        let mut lifted = Vec::new();
        let (due, keep): (Vec<Unstored>, Vec<Unstored>) = std::mem::take(&mut self.unstored)
            .into_iter()
            .partition(|u| clock_set && u.held.expires.is_some_and(|e| e <= epoch));
        self.unstored = keep;
        for u in due {
            let net = u.held.net;
            match self.fw.unban(&net) {
                Ok(()) => {
                    self.counters.unbans += 1;
                    lifted.push((net, Lift::ExpiredUnstored));
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    error!("unban {} (expired): {e}", net_text(&net));
                }
            }
        }
        if self.unstored.is_empty() {
            return lifted;
        }
        let waiting = std::mem::take(&mut self.unstored);
        let requests: Vec<BanRequest> = waiting.iter().map(|u| u.request.clone()).collect();
        let Some(stored) = self.write(cfg, &requests) else {
            self.unstored = waiting;
            return lifted;
        };
        info!(
            "{} ban(s) made while the database was down or locked now stored",
            waiting.len()
        );
        // As stored (the count may have escalated its time), or as held when another
        // process stored it meanwhile; an admin's `-d` may have rebuilt the chain or set
        // while they waited.
        let entries: Vec<Entry> = waiting
            .iter()
            .zip(&stored)
            .map(|(u, b)| b.as_ref().map_or(u.held, Ban::entry))
            .collect();
        for (en, r) in entries.iter().zip(self.ensure_held(&entries, epoch)) {
            if let Err(e) = r {
                self.counters.firewall_errors += 1;
                error!(
                    "ban {} stored, but the firewall failed: {e}",
                    net_text(&en.net)
                );
                self.retry_soon();
            }
        }
        for e in entries.iter().filter_map(|en| en.expires) {
            self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
        }
        lifted
    }

    /// A stray the audit found after the database lost track: stored instead of removed.
    pub(super) fn adopt_strays(&mut self, cfg: &Config, strays: &[IpNet], now: i64) -> bool {
        let requests: Vec<BanRequest> = strays
            .iter()
            .map(|n| BanRequest::new(*n, Origin::Daemon, "recovered", now, Lifetime::Escalating))
            .collect();
        if self.write(cfg, &requests).is_none() {
            return false;
        }
        if !requests.is_empty() {
            warn!(
                "audit: {} ban(s) the kernel held without a database row adopted",
                requests.len()
            );
        }
        self.read_next_expiry();
        true
    }

    /// Ends the back-off, as if its time had come.
    #[cfg(test)]
    pub(super) fn retry_now(&mut self) {
        if let Some(o) = self.outage.as_mut() {
            o.retry_at = Instant::now();
        }
    }

    /// Whether the audit may trust the database to say what is not banned.
    pub(super) fn store_trusted(&self) -> bool {
        self.outage.is_none() && !self.adopt
    }
}

/// Opens the database again at `path` for the daemon, its directory made again if it was
/// deleted.
fn reopen(path: &str) -> Result<Store, StoreError> {
    let store = Store::create(std::path::Path::new(path))?;
    store.set_busy_ms(DAEMON_BUSY_MS);
    store.defer_checkpoints()?;
    Ok(store)
}
