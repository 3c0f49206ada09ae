//! The bans Ampere keeps, in the database and in the kernel, and the one rule that keeps
//! them equal: the database first, the firewall second. A crash in between leaves a stored
//! ban that the next start puts back (`restore`); the reverse (a rule nobody remembers)
//! cannot happen. The daemon and the admin commands both go through here.
//!
//! Also here: expiry (database first again, the row stays to remember the count), when the
//! next expiry is due, and when the WAL is checkpointed.

use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::addr::net_text;
use crate::ban::{Ban, BanRequest, Origin};
use crate::clock;
use crate::config::Config;
use crate::firewall::{Backend, Entry, FwError};
use crate::score::Evidence;
use crate::store::{Store, StoreError};
use crate::{debug, error, info, warn};

/// How often the next expiry is reread from the database, to notice `ampere -a`/`-d`.
const EXPIRY_REFRESH: Duration = Duration::from_secs(60);

/// The WAL is checkpointed once the database was not written for this long...
const CHECKPOINT_QUIET: Duration = Duration::from_secs(1);
/// ...or, under a flood that never pauses, this long after the first unsynced write.
const CHECKPOINT_MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub bans: u64,
    pub unbans: u64,
    pub already_banned: u64,
    pub firewall_errors: u64,
    pub store_errors: u64,
    /// Audits of the kernel against the database, bans they put back, entries nobody banned
    /// they removed.
    pub audits: u64,
    pub repaired: u64,
    pub strays_removed: u64,
    /// Bans made while the database refused writes, beyond what memory keeps for it.
    pub unstored_dropped: u64,
    /// `max_bans`: temporary bans lifted early to make room, new bans refused for want of it.
    pub made_room: u64,
    pub refused: u64,
    /// Subnet bans made by escalation.
    pub subnets: u64,
    /// Unix time of the last audit (0: none yet).
    pub last_audit: i64,
    /// How long the last survey took, and the audit's interval that follows from it
    /// (`survey::spaced`; 0: no survey yet).
    pub audit_took_ms: u64,
    pub audit_every_s: u64,
    /// Expired bans forgotten (`ban_forget`, `db_max_inactive`).
    pub forgotten: u64,
}

/// Rows per transaction in bulk admin commands: the daemon's writes get in between.
const DB_CHUNK: usize = 5_000;
/// Bans per firewall command in bulk admin commands (each command reads the chain or set).
const FW_CHUNK: usize = 50_000;

/// The first retry of a failed firewall step; doubling up to the audit interval.
const RETRY_FIRST: Duration = Duration::from_secs(1);

pub struct Bans {
    store: Store,
    fw: Box<dyn Backend>,
    /// Bans decided during the current read, applied together by `flush`.
    pending: Vec<BanRequest>,
    /// Unix time at which the next ban ends, as last read from the database.
    next_expiry: Option<i64>,
    expiry_read: Instant,
    /// First and last database write since the last WAL checkpoint. With `synchronous =
    /// NORMAL` a commit survives a crash of Ampere at once, and a power cut once the WAL is
    /// checkpointed (synced): within CHECKPOINT_QUIET of the last ban, at most
    /// CHECKPOINT_MAX_DELAY after the first.
    unsynced: Option<(Instant, Instant)>,
    /// When the kernel is next compared with the database and repaired: every
    /// `audit_interval`, and sooner (backing off) after a firewall step failed.
    audit_due: Instant,
    audit_interval: Duration,
    retry: Duration,
    /// Bans the kernel holds that the database has not taken yet (`outage`).
    unstored: Vec<outage::Unstored>,
    outage: Option<outage::Outage>,
    /// The database lost track (it was made again, or bans beyond `MAX_UNSTORED` were
    /// made): the next audit stores what the kernel holds instead of removing it.
    adopt: bool,
    /// The kernel lock was held by another process: the daemon tries again at this time,
    /// holding the turnstile meanwhile (`lock`).
    lock_wait: Option<Instant>,
    turn: Option<crate::sys::FileLock>,
    /// When each address was last put in or made sure of in the kernel (`lock::reapply`).
    reapplied: std::collections::HashMap<IpNet, Instant>,
    /// When a refusal under `max_bans` was last logged (`ceiling`).
    refusal_logged: Option<Instant>,
    /// Recent daemon bans per escalation subnet (`subnet`).
    recent: subnet::Recent,
    /// The admin's rule path faults last found (`check_path`).
    path_faults: Vec<String>,
    /// The daemon audits through a child (`survey`): the one under way, and what it found
    /// that waits for repair.
    surveys: bool,
    survey: Option<survey::Survey>,
    to_repair: Option<repair::Found>,
    pub counters: Counters,
}

impl Bans {
    pub fn new(store: Store, fw: Box<dyn Backend>) -> Bans {
        Bans {
            store,
            fw,
            pending: Vec::new(),
            next_expiry: None,
            expiry_read: Instant::now(),
            unsynced: None,
            audit_due: Instant::now() + Duration::from_secs(300),
            audit_interval: Duration::from_secs(300),
            retry: RETRY_FIRST,
            unstored: Vec::new(),
            outage: None,
            adopt: false,
            path_faults: Vec::new(),
            surveys: false,
            survey: None,
            to_repair: None,
            lock_wait: None,
            turn: None,
            reapplied: Default::default(),
            refusal_logged: None,
            recent: Default::default(),
            counters: Counters::default(),
        }
    }

    pub fn set_audit_interval(&mut self, every: Duration) {
        self.audit_interval = every;
        self.audit_due = self.audit_due.min(Instant::now() + every);
    }

    /// A firewall step failed: audit (and so repair) soon, backing off while it keeps failing.
    fn retry_soon(&mut self) {
        self.audit_due = self.audit_due.min(Instant::now() + self.retry);
        self.retry = (self.retry * 2).min(self.audit_interval);
    }

    /// Opens the database, creating its directory. The firewall is the caller's to check
    /// (`Backend::prepare`) where it is about to add bans.
    pub fn open(cfg: &Config, fw: Box<dyn Backend>) -> Result<Bans, StoreError> {
        let store = Store::create(&cfg.db)?;
        Ok(Bans::new(store, fw))
    }

    /// The daemon never waits long for the database's lock: a ban goes in the kernel at
    /// once and is written from the loop when the lock is free (`outage`).
    pub fn for_daemon(self) -> Bans {
        self.store.set_busy_ms(outage::DAEMON_BUSY_MS);
        self
    }

    /// Audits through a child from now on (`survey`): the daemon, whose loop must not wait
    /// for a listing of a million.
    pub fn audit_in_child(&mut self) {
        self.surveys = true;
    }

    pub fn firewall(&self) -> &dyn Backend {
        self.fw.as_ref()
    }

    /// For reading (`status`, `why`); every write goes through `Bans`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues a ban the daemon decided; `flush` applies the queue after each read, so that
    /// a burst of bans costs one transaction and one firewall command instead of one each.
    pub fn queue(&mut self, ban: BanRequest) {
        self.pending.push(ban);
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies the queued bans: recorded first, then put in the firewall. Returns the bans
    /// that reached the kernel and those lifted to make room for them. `now` (the wall
    /// clock, unix seconds) is only read when there is something to do: this runs after
    /// every read.
    pub fn flush(&mut self, cfg: &Config, now: impl FnOnce() -> i64) -> Changes {
        if self.pending.is_empty() {
            return Changes::default();
        }
        let now = now();
        let mut pending = std::mem::take(&mut self.pending);
        let held = self.lock_kernel(false);
        let lifted = if held.is_some() && self.store_writable() {
            self.fold_covered(cfg, &mut pending);
            self.make_room(cfg, &mut pending)
        } else {
            Vec::new()
        };
        let upgrades = self.to_replace(&pending);
        let recorded = self.record(cfg, &pending, held.is_some());
        let mut new = Vec::with_capacity(pending.len());
        let mut known: Vec<IpNet> = Vec::new();
        for (r, b) in pending.iter().zip(recorded) {
            match b {
                Some(b) => new.push(b),
                None => {
                    self.counters.already_banned += 1;
                    debug!("{} is already banned", net_text(&r.net));
                    known.push(r.net);
                }
            }
        }
        // A weak ban and the strong one that took its place within this batch: only the
        // strong one goes in the kernel.
        if !upgrades.is_empty() || new.len() > 1 {
            let last: std::collections::HashMap<IpNet, usize> =
                new.iter().enumerate().map(|(i, b)| (b.net, i)).collect();
            if last.len() < new.len() {
                let mut i = 0;
                new.retain(|b| {
                    i += 1;
                    last[&b.net] == i - 1
                });
            }
        }
        if !upgrades.is_empty() {
            // The replaced ban's entry goes, for the new one's (its own timeout, or none).
            let replaced: Vec<IpNet> = new
                .iter()
                .map(|b| b.net)
                .filter(|n| upgrades.contains(n))
                .collect();
            if let Err(e) = self.fw.unban_many(&replaced) {
                warn!(
                    "lifting {} ban(s) for the ones that take their place: {e}",
                    replaced.len()
                );
            }
        }
        let banned = self.put_in_kernel(new, now, true);
        // After the new bans are marked (`just_banned`): their later events in this same
        // batch are no proof of anything. Under the lock no admin's `-d` can come between
        // the database's word and the kernel's (without it, the property test caught a ban
        // resurrected that way).
        if held.is_some() {
            self.reapply(&known, now);
        }
        Changes {
            banned,
            lifted: lifted.into_iter().map(|n| (n, Lift::MaxBans)).collect(),
        }
    }

    /// The networks in `pending` whose active ban the request takes the place of
    /// (`store::takes_over`: strong evidence over a weak ban, so that a forged packet never
    /// saves an attacker from its permanent ban; the daemon's own over CrowdSec's, so that
    /// LAPI's deletion never frees it). One indexed lookup per daemon request.
    fn to_replace(&self, pending: &[BanRequest]) -> Vec<IpNet> {
        pending
            .iter()
            .filter(|r| r.origin == Origin::Daemon)
            .filter(|r| {
                matches!(self.store.active_ban(&r.net), Ok(Some(b))
                    if crate::store::takes_over(r, b.evidence == Evidence::Weak, b.origin))
            })
            .map(|r| r.net)
            .collect()
    }

    /// Puts bans just stored in the kernel (`apply`), with the tail every door shares: the
    /// counters, the next expiry, and after a failure the error and a retry by the audit
    /// soon. `own`: the daemon's own bans, whose later events in the same batch prove
    /// nothing (`just_banned`). Returns the bans that reached the kernel.
    fn put_in_kernel(&mut self, bans: Vec<Ban>, now: i64, own: bool) -> Vec<Ban> {
        let results = self.put_in_kernel_each(&bans, now, own);
        bans.into_iter()
            .zip(results)
            .filter_map(|(b, r)| r.is_ok().then_some(b))
            .collect()
    }

    /// `put_in_kernel`, with each ban's result.
    fn put_in_kernel_each(
        &mut self,
        bans: &[Ban],
        now: i64,
        own: bool,
    ) -> Vec<Result<(), FwError>> {
        let entries: Vec<Entry> = bans.iter().map(Ban::entry).collect();
        let results = self.apply(&entries, now);
        self.counted(bans, &results, own);
        results
    }

    /// The firewall's `results` for `bans`, counted and logged (`own`: the daemon's).
    fn counted(&mut self, bans: &[Ban], results: &[Result<(), FwError>], own: bool) {
        for (b, result) in bans.iter().zip(results) {
            if let Some(e) = b.expires {
                self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
            }
            match result {
                Ok(()) => {
                    self.counters.bans += 1;
                    if own {
                        self.just_banned(b.net);
                    }
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    error!(
                        "ban {} recorded, but the firewall failed (retried by the audit): {e}",
                        net_text(&b.net)
                    );
                    self.retry_soon();
                }
            }
        }
    }

    /// Puts `bans` in the firewall, one batch per address family (each all or nothing); if
    /// a family's batch fails, each of its bans on its own, so that one bad entry does not
    /// cost the others their ban. A batch that took effect is never applied again: with a
    /// mixed batch and the IPv6 chain gone, the IPv4 rules must not be inserted twice.
    fn apply(&self, bans: &[Entry], now: i64) -> Vec<Result<(), FwError>> {
        let mut results: Vec<Option<Result<(), FwError>>> = bans.iter().map(|_| None).collect();
        for v6 in [false, true] {
            let idx: Vec<usize> = (0..bans.len())
                .filter(|&i| crate::addr::is_v6(&bans[i].net) == v6)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let group: Vec<Entry> = idx.iter().map(|&i| bans[i]).collect();
            match self.fw.ban_many(&group, now) {
                Ok(()) => idx.iter().for_each(|&i| results[i] = Some(Ok(()))),
                Err(e) if group.len() > 1 => {
                    warn!(
                        "batch of {} bans failed ({e}); applying them one by one",
                        group.len()
                    );
                    for &i in &idx {
                        results[i] = Some(self.fw.ban(&bans[i], now));
                    }
                }
                Err(e) => results[idx[0]] = Some(Err(e)),
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every ban has a family"))
            .collect()
    }

    fn wrote(&mut self) {
        let now = Instant::now();
        self.unsynced = Some((self.unsynced.map_or(now, |(first, _)| first), now));
    }

    /// When the WAL is to be checkpointed, if it holds unsynced writes.
    fn checkpoint_due(&self) -> Option<Instant> {
        self.unsynced
            .map(|(first, last)| (last + CHECKPOINT_QUIET).min(first + CHECKPOINT_MAX_DELAY))
    }

    /// The earliest of: the next expiry (to the millisecond: a ban ends within a second of
    /// its time, not a second late), rereading it, the WAL checkpoint, the audit, writing
    /// bans that wait for the database. `epoch_ms` gives the wall clock in unix
    /// milliseconds, read only when a ban is due to expire at all.
    pub fn next_timer_by(&self, epoch_ms: impl FnOnce() -> i64) -> Option<Instant> {
        let now = Instant::now();
        let wall = (self.next_expiry.is_some() || !self.unstored.is_empty()).then(epoch_ms);
        // While the database refuses writes, a due expiry waits for the next retry; while
        // another process holds the kernel lock, for the next try for it.
        let blocked = self
            .outage
            .as_ref()
            .map_or(now, |o| o.retry_at())
            .max(self.lock_wait.unwrap_or(now));
        // Nothing expires by a clock that has not been set: no wake-up for it either.
        let expiry = self
            .next_expiry
            .zip(wall.filter(|&w| clock::is_set(w / 1000)))
            .map(|(e, w)| (now + until(e, w)).max(blocked));
        let waiting = wall
            .filter(|_| !self.unstored.is_empty())
            .map(|w| self.outage_wake(w, now).max(blocked));
        [
            expiry,
            Some(self.expiry_read + EXPIRY_REFRESH),
            self.checkpoint_due(),
            Some(self.audit_due.max(blocked)),
            self.repairing().then_some(blocked),
            waiting,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Expiry, audit, checkpoints and writes that are due (`epoch` gives the wall clock in
    /// unix seconds); returns what was lifted.
    pub fn timers(&mut self, cfg: &Config, epoch: impl FnOnce() -> i64) -> Changes {
        let now = Instant::now();
        let t = epoch();
        // Nothing expires by a clock that has not been set (it reads 1970).
        let set = clock::is_set(t);
        let mut lifted = Vec::new();
        let expiry_due = set && self.next_expiry.is_some_and(|e| e <= t);
        let due =
            expiry_due || now >= self.audit_due || self.repairing() || self.outage_due(now, t, set);
        // Everything that changes the kernel waits for the lock (an admin's `-a`/`-d`).
        if due && !self.lock_blocked(now) {
            if let Some(_held) = self.lock_kernel(false) {
                if !self.unstored.is_empty() {
                    lifted = self.outage_timers(cfg, t, set);
                }
                if expiry_due && self.store_writable() {
                    lifted.extend(self.expire(t));
                }
                if self.repairing() {
                    self.repair_part(cfg, t);
                } else if now >= self.audit_due && !self.surveys {
                    self.audit(cfg, t);
                }
            }
        }
        // Not under the lock: the child would inherit it and hold it for as long as it
        // lists (an admin's `-d` through the daemon was refused as busy meanwhile).
        if self.surveys && now >= self.audit_due && !self.repairing() {
            self.audit_due = now + self.audit_interval;
            self.start_survey(cfg, t);
        }
        self.survey_timers();
        if !expiry_due && now >= self.expiry_read + EXPIRY_REFRESH {
            self.read_next_expiry();
        }
        if self.checkpoint_due().is_some_and(|t| now >= t) {
            self.unsynced = None;
            if let Err(e) = self.store.checkpoint() {
                error!("{e}");
            }
        }
        Changes {
            banned: Vec::new(),
            lifted,
        }
    }

    /// The wall clock jumped from "not set" (1970) by `delta` seconds: bans made meanwhile
    /// get their real times, so that they neither expire at once nor last decades.
    pub fn clock_was_set(&mut self, delta: i64) {
        self.wrote();
        for u in self
            .unstored
            .iter_mut()
            .filter(|u| u.request.at < clock::NOT_BEFORE)
        {
            u.request.at += delta;
            u.held.expires = u.held.expires.map(|e| e + delta);
        }
        match self.store.shift_times_before(clock::NOT_BEFORE, delta) {
            Ok(n) => info!("the wall clock was set ({delta:+} s): {n} ban(s) made before re-timed"),
            Err(e) => {
                self.counters.store_errors += 1;
                error!("{e}");
            }
        }
        self.read_next_expiry();
    }

    /// Bans in the kernel waiting for the database.
    pub fn unstored(&self) -> usize {
        self.unstored.len()
    }

    pub fn active_count(&self) -> i64 {
        self.store.active_count().unwrap_or(-1)
    }
}

/// From the wall clock `epoch_ms` (unix milliseconds) to the unix second `at`.
fn until(at: i64, epoch_ms: i64) -> Duration {
    Duration::from_millis(at.saturating_mul(1000).saturating_sub(epoch_ms).max(0) as u64)
}

mod bulk;
mod ceiling;
mod changes;
mod expiry;
pub use changes::{Changes, Lift, Outcome};
mod known;
mod lock;
mod outage;
mod pulled;
mod repair;
mod restore;
mod subnet;
pub mod survey;

#[cfg(test)]
mod tests;
