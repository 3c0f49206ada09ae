//! What the database remembers besides active bans (known hosts, expired bans for the
//! escalation count) is kept and forgotten here, under the same rules as the bans for a
//! database that refuses writes (`outage.rs`): the daemon never waits for it.

use super::Bans;
use crate::known::Learned;
use crate::store::Pruned;

impl Bans {
    /// Stores what the engine learned about legitimate hosts (`known.rs`): one transaction,
    /// only when there is something (a host's row at most once per `known::WRITE_EVERY`).
    /// False when the database did not take it (an outage, counted as one): the rows are
    /// written again at their hosts' next sighting.
    pub fn record_known(&mut self, rows: &[Learned], max: usize) -> bool {
        if rows.is_empty() {
            return true;
        }
        if !self.store_writable() {
            return false;
        }
        self.wrote();
        match self.store.record_known(rows, max) {
            Ok(()) => true,
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    /// Forgets the known hosts not seen since `before` (unix seconds); how many rows went.
    pub fn forget_known(&mut self, before: i64) -> usize {
        if !self.store_writable() {
            return 0;
        }
        self.wrote();
        match self.store.forget_known(before) {
            Ok(n) => n,
            Err(e) => {
                self.store_failed(&e);
                0
            }
        }
    }

    /// Forgets expired bans (`store/prune.rs`): at most `PRUNE_CAP` rows a call, and
    /// whether more wait.
    pub fn prune(&mut self, max: usize, before: i64) -> Pruned {
        if !self.store_writable() {
            return Pruned::default();
        }
        self.wrote();
        match self.store.prune(max, before, PRUNE_CAP) {
            Ok(p) => {
                self.counters.forgotten += p.forgotten as u64;
                p
            }
            Err(e) => {
                self.store_failed(&e);
                Pruned::default()
            }
        }
    }
}

/// Rows forgotten in one transaction: about 30 ms on a Raspberry Pi class machine, so a
/// backlog (a first start with this version on a database of years) goes in steps.
pub const PRUNE_CAP: usize = 5_000;
