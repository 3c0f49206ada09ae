//! How many bans are active, per origin, without counting them. A count of a million rows
//! took SQLite 27 ms (all active bans: the stats file, each `stats_interval`) to 70 ms (per
//! origin: each `status`), in the loop, growing with the bans. The table `tally` holds the
//! numbers, and every statement of `Store` that makes a ban active or ends it, or changes
//! an active ban's origin, changes them in its own transaction (`Tally`); a daemon's start
//! counts once more (`recount`: a database edited by hand). Not triggers: a trigger is a
//! sub-program per row, and made an `-a` of a million 2 s slower (9.3 to 11.4 s) for what
//! one statement per transaction does (`the_tally_is_the_count` checks every writer against
//! the rows).

use super::sqlite::{Db, Result};
use super::Store;
use crate::ban::Origin;

/// The count, by origin as the code reads a row's (`Origin::parse`: an unknown one is the
/// daemon's).
macro_rules! recount {
    () => {
        "UPDATE tally SET active = (SELECT count(*) FROM bans WHERE active = 1
    AND CASE WHEN origin IN ('manual', 'crowdsec') THEN origin ELSE 'daemon' END = tally.origin);"
    };
}

/// Schema step 9: the table, filled once from the rows.
pub(super) const MIGRATION: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS tally ( -- active bans per origin, kept by the store's writes
    origin TEXT PRIMARY KEY NOT NULL,
    active INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO tally(origin, active) VALUES('daemon', 0), ('manual', 0), ('crowdsec', 0);
",
    recount!()
);

const ORIGINS: [Origin; 3] = [Origin::Daemon, Origin::Manual, Origin::Crowdsec];

/// What one transaction changed, per origin; written at its end (`write`).
#[derive(Default)]
pub(super) struct Tally([i64; 3]);

impl Tally {
    pub(super) fn add(&mut self, origin: Origin, n: i64) {
        self.0[ORIGINS.iter().position(|&o| o == origin).unwrap_or(0)] += n;
    }

    /// An active ban of `from` is now `to`'s.
    pub(super) fn moved(&mut self, from: Origin, to: Origin) {
        self.add(from, -1);
        self.add(to, 1);
    }

    pub(super) fn write(&self, db: &Db) -> Result<()> {
        for (o, n) in ORIGINS.iter().zip(self.0).filter(|(_, n)| *n != 0) {
            let mut st = db.prepare("UPDATE tally SET active = active + ?2 WHERE origin = ?1")?;
            st.bind_text(1, o.as_str())?;
            st.bind_i64(2, n)?;
            st.step_done()?;
        }
        Ok(())
    }
}

impl Store {
    /// All active bans.
    pub fn active_count(&self) -> Result<i64> {
        self.db
            .query_i64("SELECT coalesce(sum(active), 0) FROM tally")
    }

    /// The active bans of one origin: the daemon's (what `max_bans` bounds), CrowdSec's
    /// (`crowdsec_max`).
    pub fn active_count_of(&self, origin: Origin) -> Result<i64> {
        let mut st = self
            .db
            .prepare("SELECT active FROM tally WHERE origin = ?1")?;
        st.bind_text(1, origin.as_str())?;
        Ok(if st.step_row()? { st.column_i64(0) } else { 0 })
    }

    /// Active bans per origin (`daemon`, `manual`, `crowdsec`), those with any.
    pub fn active_by_origin(&self) -> Result<Vec<(String, i64)>> {
        let mut st = self
            .db
            .prepare("SELECT origin, active FROM tally WHERE active > 0 ORDER BY origin")?;
        let mut out = Vec::new();
        while st.step_row()? {
            out.push((st.column_text(0), st.column_i64(1)));
        }
        Ok(out)
    }

    /// Counts the active bans again (a scan, at a daemon's start). Returns by how many
    /// bans the tally was off.
    pub fn recount(&mut self) -> Result<i64> {
        let read = |db: &Db| -> Result<Vec<i64>> {
            let mut st = db.prepare("SELECT active FROM tally ORDER BY origin")?;
            let mut out = Vec::new();
            while st.step_row()? {
                out.push(st.column_i64(0));
            }
            Ok(out)
        };
        self.in_transaction(|db| {
            let before = read(db)?;
            db.exec(recount!())?;
            let after = read(db)?;
            Ok(before.iter().zip(&after).map(|(b, a)| (b - a).abs()).sum())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sqlite::Db;
    use super::super::MIGRATIONS;
    use super::*;
    use crate::ban::{BanRequest, Lifetime, Origin};
    use proptest::prelude::*;

    /// What the rows say, counted.
    fn counted(s: &Store) -> Vec<(String, i64)> {
        let mut st = s
            .db
            .prepare(
                "SELECT origin, count(*) FROM bans WHERE active = 1 GROUP BY origin ORDER BY origin",
            )
            .unwrap();
        let mut out = Vec::new();
        while st.step_row().unwrap() {
            out.push((st.column_text(0), st.column_i64(1)));
        }
        out
    }

    fn request(i: u8, origin: Origin, at: i64, lifetime: Lifetime) -> BanRequest {
        let net = crate::addr::parse_net(&format!("192.0.2.{}", i % 4)).unwrap();
        BanRequest::new(net, origin, "manual", at, lifetime)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Record(u8, Origin, bool),
        Expire(i64),
        EndSoonest(usize),
        Fold(u8),
        Permanent(u8),
        Remove(u8),
        Prune,
        Pulled(u8, i64),
        EndCrowdsec(u8, i64),
        EndUnlisted(i64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let origin = prop_oneof![
            Just(Origin::Daemon),
            Just(Origin::Manual),
            Just(Origin::Crowdsec)
        ];
        prop_oneof![
            (any::<u8>(), origin, any::<bool>()).prop_map(|(i, o, p)| Op::Record(i, o, p)),
            (0i64..40).prop_map(Op::Expire),
            (0usize..4).prop_map(Op::EndSoonest),
            any::<u8>().prop_map(Op::Fold),
            any::<u8>().prop_map(Op::Permanent),
            any::<u8>().prop_map(Op::Remove),
            Just(Op::Prune),
            (any::<u8>(), 0i64..4).prop_map(|(i, p)| Op::Pulled(i, p)),
            (any::<u8>(), 0i64..4).prop_map(|(i, p)| Op::EndCrowdsec(i, p)),
            (0i64..4, 0usize..4).prop_map(|(p, n)| Op::EndUnlisted(p, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn the_tally_is_the_count(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Store::open(&dir.path().join("a.db")).unwrap();
            for (t, o) in ops.iter().enumerate() {
                let t = t as i64;
                let net = |i: u8| crate::addr::parse_net(&format!("192.0.2.{}", i % 4)).unwrap();
                match o {
                    Op::Record(i, origin, permanent) => {
                        let life = if *permanent { Lifetime::Permanent } else { Lifetime::Escalating };
                        s.record(&[request(*i, *origin, t, life)], &|at, _| Some(at + 5)).unwrap();
                    }
                    Op::Expire(at) => { s.expire_due(*at, 2).unwrap(); }
                    Op::EndSoonest(n) => { s.end_soonest_temporary(*n).unwrap(); }
                    Op::Fold(i) => {
                        let into = crate::addr::parse_net("192.0.2.0/29").unwrap();
                        s.fold_into(&[net(*i)], &into, None).unwrap();
                    }
                    Op::Permanent(i) => { s.make_permanent(&[net(*i)]).unwrap(); }
                    Op::Remove(i) => { s.remove_many(&[net(*i)]).unwrap(); }
                    Op::Prune => { s.prune(2, t, 4).unwrap(); }
                    Op::Pulled(i, p) => { s.mark_pulled(&[net(*i)], *p).unwrap(); }
                    Op::EndCrowdsec(i, p) => { s.end_crowdsec(&[net(*i)], *p).unwrap(); }
                    Op::EndUnlisted(p, n) => { s.end_unlisted(*p, *n).unwrap(); }
                }
                let tally = s.active_by_origin().unwrap();
                prop_assert_eq!(&tally, &counted(&s), "after {:?}", o);
                prop_assert_eq!(s.active_count().unwrap(), tally.iter().map(|(_, n)| n).sum::<i64>());
                for origin in [Origin::Daemon, Origin::Manual, Origin::Crowdsec] {
                    let of = tally.iter().find(|(o, _)| o == origin.as_str()).map_or(0, |(_, n)| *n);
                    prop_assert_eq!(s.active_count_of(origin).unwrap(), of);
                }
            }
        }
    }

    #[test]
    fn a_database_before_the_tally_is_counted_once_at_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        {
            let db = Db::open(&p, 1000).unwrap();
            for (v, sql) in MIGRATIONS[..8].iter().enumerate() {
                db.exec(sql).unwrap();
                db.exec(&format!("PRAGMA user_version = {}", v + 1))
                    .unwrap();
            }
            db.exec(
                "INSERT INTO bans(addr, first_ban, last_ban, count, event, account, origin, active)
                 VALUES('192.0.2.1', 1, 1, 1, 'x', '', 'daemon', 1),
                       ('192.0.2.2', 1, 1, 1, 'x', '', 'daemon', 1),
                       ('192.0.2.3', 1, 1, 1, 'x', '', 'manual', 1),
                       ('192.0.2.4', 1, 1, 1, 'x', '', 'crowdsec', 0)",
            )
            .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(
            s.active_by_origin().unwrap(),
            [("daemon".to_string(), 2), ("manual".to_string(), 1)]
        );
        assert_eq!(s.active_count().unwrap(), 3);
        assert_eq!(s.active_count_of(Origin::Crowdsec).unwrap(), 0);
    }

    #[test]
    fn a_hand_edit_is_counted_again_at_the_recount() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let r = |i| request(i, Origin::Manual, 1, Lifetime::Permanent);
        s.record(&[r(1), r(2)], &|_, _| None).unwrap();
        assert_eq!(s.recount().unwrap(), 0);
        s.db.exec("DELETE FROM bans WHERE addr = '192.0.2.1'")
            .unwrap();
        s.db.exec(
            "INSERT INTO bans(addr, first_ban, last_ban, count, event, account, origin)
                   VALUES('192.0.2.7', 1, 1, 1, 'x', '', 'something else')",
        )
        .unwrap();
        assert_eq!(s.active_by_origin().unwrap(), [("manual".to_string(), 2)]);
        assert_eq!(s.recount().unwrap(), 2);
        assert_eq!(
            s.active_by_origin().unwrap(),
            [("daemon".to_string(), 1), ("manual".to_string(), 1)]
        );
    }
}
