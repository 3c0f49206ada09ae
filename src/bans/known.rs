//! The memory of known hosts goes to the same database as the bans, under the same rules
//! for a database that refuses writes (`outage.rs`): the daemon never waits for it.

use super::Bans;
use crate::known::Learned;

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
}
