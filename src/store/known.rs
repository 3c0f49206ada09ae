//! The memory of known hosts on disk (`known.rs` holds it in memory): one row per address
//! and account, with where it came from and when it was first and last seen. Bounded: at
//! most `known_max` rows (the longest unseen go first), none older than `known_forget`.

use std::net::IpAddr;

use super::sqlite::Result;
use super::Store;
use crate::facts::Source;
use crate::known::Learned;

impl Store {
    /// Writes what was learned in one transaction (a row seen again keeps its first time
    /// and the better proof), then keeps the `max` rows seen last.
    pub fn record_known(&mut self, rows: &[Learned], max: usize) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.in_transaction(|db| {
            let mut put = db.prepare(
                "INSERT INTO known(addr, account, source, first, last) VALUES(?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT(addr, account) DO UPDATE SET
                    last = max(last, excluded.last),
                    source = CASE WHEN ?5 THEN excluded.source ELSE source END",
            )?;
            for r in rows {
                put.reset();
                put.bind_text(1, &r.addr.to_string())?;
                put.bind_text(2, &String::from_utf8_lossy(&r.account))?;
                put.bind_text(3, r.source.as_str())?;
                put.bind_i64(4, r.last)?;
                put.bind_i64(5, i64::from(r.source.proved()))?;
                put.step_done()?;
            }
            let mut trim = db.prepare(
                "DELETE FROM known WHERE rowid IN
                    (SELECT rowid FROM known ORDER BY last DESC LIMIT -1 OFFSET ?1)",
            )?;
            trim.bind_i64(1, i64::try_from(max).unwrap_or(i64::MAX))?;
            trim.step_done()
        })
    }

    /// The rows seen at or after `since`, the latest `max` of them. A row whose address or
    /// source does not parse (edited by hand) is left out.
    pub fn known_since(&self, since: i64, max: usize) -> Result<Vec<Learned>> {
        let mut st = self.db.prepare(
            "SELECT addr, account, source, last FROM known WHERE last >= ?1
             ORDER BY last DESC LIMIT ?2",
        )?;
        st.bind_i64(1, since)?;
        st.bind_i64(2, i64::try_from(max).unwrap_or(i64::MAX))?;
        let mut out = Vec::new();
        while st.step_row()? {
            let (Ok(addr), Some(source)) = (
                st.column_text(0).parse::<IpAddr>(),
                Source::parse(&st.column_text(2)),
            ) else {
                continue;
            };
            out.push(Learned {
                addr: crate::addr::canonical(addr),
                account: crate::account::Name::new(st.column_text(1).as_bytes()),
                source,
                last: st.column_i64(3),
            });
        }
        Ok(out)
    }

    /// Deletes the rows not seen since `before`; returns how many.
    pub fn forget_known(&mut self, before: i64) -> Result<usize> {
        self.in_transaction(|db| {
            super::prune::delete(
                db,
                "DELETE FROM known WHERE last < ?1 RETURNING 1",
                &[before],
            )
        })
    }

    pub fn known_count(&self) -> Result<i64> {
        self.db.query_i64("SELECT count(*) FROM known")
    }

    /// The rows of `addr`: (account, source, first, last), the latest first.
    pub fn known_of(&self, addr: IpAddr) -> Result<Vec<(String, String, i64, i64)>> {
        let mut st = self.db.prepare(
            "SELECT account, source, first, last FROM known WHERE addr = ?1 ORDER BY last DESC",
        )?;
        st.bind_text(1, &addr.to_string())?;
        let mut out = Vec::new();
        while st.step_row()? {
            out.push((
                st.column_text(0),
                st.column_text(1),
                st.column_i64(2),
                st.column_i64(3),
            ));
        }
        Ok(out)
    }
}
