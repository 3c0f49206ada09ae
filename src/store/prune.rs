//! Bounded storage. An expired ban's row is kept so that the address's next ban escalates
//! (`bantime_factor`, `permanent_after`), but a botnet brings new addresses every minute
//! for years: inactive rows go once they have had no ban for `ban_forget`, and the oldest
//! beyond `db_max_inactive`. Active bans never go; nor do rows folded into an active
//! network ban (they are what the network ban stands for).

use super::sqlite::{Db, Result};
use super::Store;

/// The rows that may go. The network ban a row was folded into is looked up by its key:
/// `NOT IN (SELECT addr FROM bans WHERE active = 1)` had SQLite gather every active ban
/// first, a million at each prune.
const FORGETTABLE: &str = "active = 0 AND (folded_into IS NULL
    OR NOT EXISTS (SELECT 1 FROM bans AS n WHERE n.addr = bans.folded_into AND n.active = 1))";

const INACTIVE: &str = "SELECT count(*) FROM bans WHERE active = 0";

/// What one prune did: the rows forgotten, and whether more wait (the cap was reached).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub forgotten: usize,
    pub more: bool,
}

/// Runs a `DELETE ... RETURNING 1` with `args` bound as ?1, ?2...; the rows it deleted.
pub(super) fn delete(db: &Db, sql: &str, args: &[i64]) -> Result<usize> {
    let mut st = db.prepare(sql)?;
    for (i, a) in (1..).zip(args) {
        st.bind_i64(i, *a)?;
    }
    let mut n = 0;
    while st.step_row()? {
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// Forgets inactive rows without a ban since `before`, then the oldest beyond `max`;
    /// at most `cap` in one call (one transaction), so that a backlog never holds the
    /// loop for long: the caller comes back while `more`.
    pub fn prune(&mut self, max: usize, before: i64, cap: usize) -> Result<Pruned> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.in_transaction(|db| {
            let old = delete(
                db,
                &format!(
                    "DELETE FROM bans WHERE rowid IN (SELECT rowid FROM bans
                     WHERE {FORGETTABLE} AND last_ban < ?1 LIMIT ?2) RETURNING 1"
                ),
                &[before, cap],
            )?;
            let left = cap - old as i64;
            let inactive =
                db.query_i64(&format!("SELECT count(*) FROM bans WHERE {FORGETTABLE}"))?;
            let over = (inactive - max).max(0);
            let oldest = delete(
                db,
                &format!(
                    "DELETE FROM bans WHERE rowid IN (SELECT rowid FROM bans
                     WHERE {FORGETTABLE} ORDER BY last_ban LIMIT ?1) RETURNING 1"
                ),
                &[over.min(left)],
            )?;
            Ok(Pruned {
                forgotten: old + oldest,
                more: old as i64 == cap || over > left,
            })
        })
    }

    /// The database's size on disk (with its write-ahead log), for `status`.
    pub fn size_on_disk(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.path())).ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn inactive_count(&self) -> Result<i64> {
        self.db.query_i64(INACTIVE)
    }
}
