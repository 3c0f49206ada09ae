//! The daemon's start: what ended while Ampere was down lifted, and the kernel made equal
//! to the database in one batch; a database made anew adopts the kernel's bans first.

use super::Bans;
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::error::Error;
use crate::firewall::{Entry, ErrorKind, FwError, Source};
use crate::{info, warn};

impl Bans {
    /// The daemon's start: checkpoints from its timer, bans that ended while Ampere was down
    /// lifted, then the firewall flushed and every stored ban put back, with its remaining
    /// time, in one batch. Returns how many were restored.
    pub fn restore(&mut self, now: i64) -> Result<usize, Error> {
        let started = std::time::Instant::now();
        let _held = self.lock_kernel(true);
        self.store.defer_checkpoints()?;
        // All of them before the loop (the restore replaces the kernel's sets), in parts: a
        // million that lapsed together are never held at once.
        let mut lapsed = 0;
        loop {
            let part = self
                .store
                .expire_due(now, super::expiry::EXPIRE_PER_TURN)?
                .len();
            lapsed += part;
            if part < super::expiry::EXPIRE_PER_TURN {
                break;
            }
        }
        if lapsed > 0 {
            info!("{lapsed} ban(s) ended while Ampere was not running");
        }
        // The tally the loop reads instead of counting: a hand edit of the database
        // (sqlite3) is not in it.
        let off = self.store.recount()?;
        if off != 0 {
            warn!(
                "{}: the count of active bans was off by {off} (edited by hand?): counted again",
                self.store.path()
            );
        }
        let mut count = self.store.active_count()?;
        if self.store.is_new() && count == 0 {
            // The database was deleted (a stop right after, or a mistake) and made anew: the
            // kernel's bans are the only record left. Adopted, not flushed.
            if let Some(held) = self.fw.list().ok().filter(|h| !h.is_empty()) {
                let requests: Vec<BanRequest> = held
                    .iter()
                    .map(|n| {
                        BanRequest::new(*n, Origin::Daemon, "recovered", now, Lifetime::Permanent)
                    })
                    .collect();
                self.store.record(&requests, &|_, _| None)?;
                warn!(
                    "the database {} is new, and the kernel holds {} ban(s) of Ampere's: adopted (as permanent; `ampere -d` lifts them)",
                    self.store.path(),
                    held.len()
                );
                count = self.store.active_count()?;
            }
        }
        let stored = Stored {
            store: &self.store,
            extra: &[],
        };
        self.fw.restore(&stored, now)?;
        self.read_next_expiry();
        // The kernel is the database now: the first audit is spaced by what this took, as
        // the next is by a survey's length (a million: the restore and a survey each take
        // seconds, and a survey at once met the first bans).
        let took = started.elapsed();
        let first = super::survey::spaced(self.audit_interval, took, count);
        if first > self.audit_interval {
            info!(
                "the restore took {:.1} s: the first audit comes in {} s",
                took.as_secs_f64(),
                first.as_secs()
            );
        }
        self.audit_due = std::time::Instant::now() + first;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

/// The database's active bans (and `extra`, held in memory) as the firewall's restore
/// reads them: row by row, never all at once.
pub(super) struct Stored<'a> {
    pub store: &'a crate::store::Store,
    pub extra: &'a [Entry],
}

impl Source for Stored<'_> {
    fn each(&self, f: &mut dyn FnMut(Entry)) -> Result<(), FwError> {
        self.store
            .for_each_active_entry(&mut *f)
            .map_err(|e| FwError::new(ErrorKind::Failed, format!("reading the bans: {e}")))?;
        self.extra.iter().for_each(|e| f(*e));
        Ok(())
    }
}
