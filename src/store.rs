//! The ban database: SQLite (WAL, busy timeout) behind a small safe API. Every value goes in
//! through a bound parameter: AccountID and the like come from attackers. All of the SQLite
//! `unsafe` of Ampere lives in this module.

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::path::Path;
use std::ptr;

use libsqlite3_sys as ffi;

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bans (
    addr      TEXT PRIMARY KEY NOT NULL, -- canonical: 192.0.2.1, 2001:db8::1, 198.51.100.0/24
    first_ban INTEGER NOT NULL,          -- unix seconds of the first ban ever
    last_ban  INTEGER NOT NULL,          -- unix seconds of the latest ban
    count     INTEGER NOT NULL,          -- how many times banned
    event     TEXT NOT NULL,             -- event that triggered the latest ban, or 'manual'
    account   TEXT NOT NULL,             -- its AccountID (attacker-controlled text)
    expires   INTEGER,                   -- unix seconds; NULL = permanent
    active    INTEGER NOT NULL DEFAULT 1 -- 0 = expired, kept to remember the count
);
CREATE INDEX IF NOT EXISTS bans_active ON bans(active, expires);
";

#[derive(Debug)]
pub struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

type Result<T> = std::result::Result<T, StoreError>;

/// A ban as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub addr: String,
    pub first_ban: i64,
    pub last_ban: i64,
    pub count: i64,
    pub event: String,
    pub account: String,
    pub expires: Option<i64>,
}

/// What to record for a new ban.
#[derive(Clone, Debug)]
pub struct NewBan<'a> {
    pub addr: &'a str,
    pub now: i64,
    pub event: &'a str,
    pub account: &'a str,
}

/// A ban that became active: how many times the address has been banned now, and when
/// this ban ends (None = permanent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Banned {
    pub count: i64,
    pub expires: Option<i64>,
}

pub struct Store {
    db: *mut ffi::sqlite3,
    path: String,
}

impl Store {
    /// Opens (creating if needed) the database, switches it to WAL and sets a busy timeout so
    /// that the daemon and an admin's `ampere -a` can write at the same time.
    pub fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| StoreError(format!("{shown}: path contains a NUL byte")))?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE
            | ffi::SQLITE_OPEN_CREATE
            | ffi::SQLITE_OPEN_NOMUTEX
            | ffi::SQLITE_OPEN_EXRESCODE;
        // SAFETY: cpath is NUL-terminated and outlives the call; db receives a handle that we
        // own from here on (closed in Drop, also when open fails).
        let rc = unsafe { ffi::sqlite3_open_v2(cpath.as_ptr(), &mut db, flags, ptr::null()) };
        let store = Store { db, path: shown };
        if rc != ffi::SQLITE_OK {
            return Err(store.error("cannot open database"));
        }
        // SAFETY: db is a valid open handle.
        unsafe { ffi::sqlite3_busy_timeout(store.db, 10_000) };
        store.exec("PRAGMA journal_mode = WAL")?;
        store.exec("PRAGMA synchronous = NORMAL")?;
        // Bounded page cache: Ampere's working set is tiny and routers have little memory.
        store.exec("PRAGMA cache_size = -256")?;
        store.migrate()?;
        Ok(store)
    }

    /// Leaves WAL checkpoints to `checkpoint`, called by the daemon from its timer: SQLite's
    /// automatic checkpoint runs inside the commit that fills the WAL and syncs the database
    /// file, which put 2 to 30 ms on every few hundredth ban.
    pub fn defer_checkpoints(&self) -> Result<()> {
        self.exec("PRAGMA wal_autocheckpoint = 0")
    }

    /// Copies the WAL into the database file; PASSIVE never waits for another connection
    /// (an admin's `ampere -a`), it just does what it can now.
    pub fn checkpoint(&self) -> Result<()> {
        self.exec("PRAGMA wal_checkpoint(PASSIVE)")
    }

    fn migrate(&self) -> Result<()> {
        let version = self.query_i64("PRAGMA user_version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError(format!(
                "{}: schema version {version} is newer than this Ampere understands ({SCHEMA_VERSION})",
                self.path
            )));
        }
        if version < SCHEMA_VERSION {
            self.exec("BEGIN IMMEDIATE")?;
            let r = self
                .exec(SCHEMA)
                .and_then(|_| self.exec(&format!("PRAGMA user_version = {SCHEMA_VERSION}")));
            self.finish(r)?;
        }
        Ok(())
    }

    /// Records bans in one transaction. `expiry(count)` gives the end of an address's
    /// `count`-th ban (None = permanent), so that repeat offenders escalate. Returns, per
    /// entry, the new ban, or None if it was already an active ban (then no firewall rule
    /// must be added).
    pub fn ban_many(
        &mut self,
        bans: &[NewBan<'_>],
        expiry: &dyn Fn(i64) -> Option<i64>,
    ) -> Result<Vec<Option<Banned>>> {
        self.in_transaction(|s| {
            let mut find = s.prepare("SELECT count, active FROM bans WHERE addr = ?1")?;
            let mut put = s.prepare(
                "INSERT INTO bans(addr, first_ban, last_ban, count, event, account, expires, active)
                 VALUES(?1, ?2, ?2, ?3, ?4, ?5, ?6, 1)
                 ON CONFLICT(addr) DO UPDATE SET
                    last_ban = excluded.last_ban, count = excluded.count, event = excluded.event,
                    account = excluded.account, expires = excluded.expires, active = 1",
            )?;
            let mut out = Vec::with_capacity(bans.len());
            for b in bans {
                find.reset();
                find.bind_text(1, b.addr)?;
                let (count, active) = if find.step_row()? {
                    (find.column_i64(0), find.column_i64(1) != 0)
                } else {
                    (0, false)
                };
                if active {
                    out.push(None);
                    continue;
                }
                let banned = Banned {
                    count: count + 1,
                    expires: expiry(count + 1),
                };
                put.reset();
                put.bind_text(1, b.addr)?;
                put.bind_i64(2, b.now)?;
                put.bind_i64(3, banned.count)?;
                put.bind_text(4, b.event)?;
                put.bind_text(5, b.account)?;
                put.bind_opt_i64(6, banned.expires)?;
                put.step_done()?;
                out.push(Some(banned));
            }
            Ok(out)
        })
    }

    pub fn ban(
        &mut self,
        ban: &NewBan<'_>,
        expiry: &dyn Fn(i64) -> Option<i64>,
    ) -> Result<Option<Banned>> {
        Ok(self.ban_many(std::slice::from_ref(ban), expiry)?[0])
    }

    /// Ends every ban whose time is up at `now`; the rows stay (inactive) so that the count
    /// keeps escalating. Returns the addresses, for the firewall.
    pub fn expire_due(&mut self, now: i64) -> Result<Vec<String>> {
        self.in_transaction(|s| {
            let mut st = s.prepare(
                "UPDATE bans SET active = 0
                 WHERE active = 1 AND expires IS NOT NULL AND expires <= ?1 RETURNING addr",
            )?;
            st.bind_i64(1, now)?;
            let mut out = Vec::new();
            while st.step_row()? {
                out.push(st.column_text(0));
            }
            Ok(out)
        })
    }

    /// When the next active ban ends, if any ends at all.
    pub fn next_expiry(&self) -> Result<Option<i64>> {
        let mut st =
            self.prepare("SELECT min(expires) FROM bans WHERE active = 1 AND expires IS NOT NULL")?;
        Ok(if st.step_row()? {
            st.column_opt_i64(0)
        } else {
            None
        })
    }

    pub fn active_count(&self) -> Result<i64> {
        self.query_i64("SELECT count(*) FROM bans WHERE active = 1")
    }

    /// Forgets addresses entirely (an admin's `-d`). Returns, per address, whether it was an
    /// active ban.
    pub fn remove_many(&mut self, addrs: &[&str]) -> Result<Vec<bool>> {
        self.in_transaction(|s| {
            let mut st = s.prepare("DELETE FROM bans WHERE addr = ?1 RETURNING active")?;
            let mut out = Vec::with_capacity(addrs.len());
            for a in addrs {
                st.reset();
                st.bind_text(1, a)?;
                let mut was_active = false;
                while st.step_row()? {
                    was_active |= st.column_i64(0) != 0;
                }
                out.push(was_active);
            }
            Ok(out)
        })
    }

    /// Whether `addr` is an active ban now.
    pub fn is_banned(&self, addr: &str) -> Result<bool> {
        let mut st = self.prepare("SELECT 1 FROM bans WHERE addr = ?1 AND active = 1")?;
        st.bind_text(1, addr)?;
        st.step_row()
    }

    /// Active bans, oldest first.
    pub fn active(&self) -> Result<Vec<Ban>> {
        let mut st = self.prepare(
            "SELECT addr, first_ban, last_ban, count, event, account, expires
             FROM bans WHERE active = 1 ORDER BY first_ban, addr",
        )?;
        let mut out = Vec::new();
        while st.step_row()? {
            out.push(Ban {
                addr: st.column_text(0),
                first_ban: st.column_i64(1),
                last_ban: st.column_i64(2),
                count: st.column_i64(3),
                event: st.column_text(4),
                account: st.column_text(5),
                expires: st.column_opt_i64(6),
            });
        }
        Ok(out)
    }

    fn in_transaction<T>(&mut self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.exec("BEGIN IMMEDIATE")?;
        let r = f(self);
        self.finish(r)
    }

    fn finish<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => {
                if let Err(e) = self.exec("COMMIT") {
                    let _ = self.exec("ROLLBACK");
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.exec("ROLLBACK");
                Err(e)
            }
        }
    }

    fn exec(&self, sql: &str) -> Result<()> {
        let csql = CString::new(sql).map_err(|_| StoreError("SQL contains NUL".into()))?;
        // SAFETY: db is open; csql is NUL-terminated; no callback, no error-message pointer.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db,
                csql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(sql.split_whitespace().next().unwrap_or("exec")));
        }
        Ok(())
    }

    fn query_i64(&self, sql: &str) -> Result<i64> {
        let mut st = self.prepare(sql)?;
        if st.step_row()? {
            Ok(st.column_i64(0))
        } else {
            Ok(0)
        }
    }

    fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: db is open; sql points to sql.len() valid bytes (no NUL needed with an
        // explicit length); raw receives a statement owned by the returned Stmt.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                sql.len() as c_int,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK || raw.is_null() {
            return Err(self.error("prepare"));
        }
        Ok(Stmt { raw, store: self })
    }

    fn error(&self, what: &str) -> StoreError {
        // SAFETY: db may be null only if allocation failed, in which case sqlite3_errmsg
        // returns a static "out of memory" string; the returned pointer is valid until the
        // next call on this handle and is copied at once.
        let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
            .to_string_lossy()
            .into_owned();
        StoreError(format!("{}: {what}: {msg}", self.path))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: every Stmt borrows the Store, so none is alive here; sqlite3_close accepts
        // the null handle a failed open may leave.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

struct Stmt<'a> {
    raw: *mut ffi::sqlite3_stmt,
    store: &'a Store,
}

impl Stmt<'_> {
    fn reset(&mut self) {
        // SAFETY: raw is a valid prepared statement.
        unsafe {
            ffi::sqlite3_reset(self.raw);
            ffi::sqlite3_clear_bindings(self.raw);
        }
    }

    fn check(&self, rc: c_int) -> Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.store.error("bind"))
        }
    }

    fn bind_text(&mut self, idx: c_int, v: &str) -> Result<()> {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before returning, so `v` need
        // not outlive the statement; the length is explicit.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.raw,
                idx,
                v.as_ptr().cast::<c_char>(),
                v.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check(rc)
    }

    fn bind_i64(&mut self, idx: c_int, v: i64) -> Result<()> {
        // SAFETY: raw is a valid statement; idx is checked by SQLite.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw, idx, v) };
        self.check(rc)
    }

    fn bind_opt_i64(&mut self, idx: c_int, v: Option<i64>) -> Result<()> {
        match v {
            Some(v) => self.bind_i64(idx, v),
            // SAFETY: raw is a valid statement; idx is checked by SQLite.
            None => self.check(unsafe { ffi::sqlite3_bind_null(self.raw, idx) }),
        }
    }

    /// Steps once; true if a row is available.
    fn step_row(&mut self) -> Result<bool> {
        // SAFETY: raw is a valid statement.
        match unsafe { ffi::sqlite3_step(self.raw) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(self.store.error("step")),
        }
    }

    fn step_done(&mut self) -> Result<()> {
        while self.step_row()? {}
        Ok(())
    }

    fn column_i64(&self, i: c_int) -> i64 {
        // SAFETY: called only after step_row returned a row; SQLite converts types as needed.
        unsafe { ffi::sqlite3_column_int64(self.raw, i) }
    }

    fn column_opt_i64(&self, i: c_int) -> Option<i64> {
        // SAFETY: as for column_i64.
        let ty = unsafe { ffi::sqlite3_column_type(self.raw, i) };
        (ty != ffi::SQLITE_NULL).then(|| self.column_i64(i))
    }

    fn column_text(&self, i: c_int) -> String {
        // SAFETY: the pointer and length are read right after each other for the current row
        // and copied before any further call on the statement.
        unsafe {
            let p = ffi::sqlite3_column_text(self.raw, i);
            if p.is_null() {
                return String::new();
            }
            let n = ffi::sqlite3_column_bytes(self.raw, i) as usize;
            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned()
        }
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from sqlite3_prepare_v2 and is finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    fn nb<'a>(addr: &'a str, now: i64) -> NewBan<'a> {
        NewBan {
            addr,
            now,
            event: "ChallengeResponseFailed",
            account: "1001",
        }
    }

    fn forever(_: i64) -> Option<i64> {
        None
    }

    #[test]
    fn add_list_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        assert_eq!(
            s.ban_many(&[nb("192.0.2.1", 100), nb("2001:db8::1", 101)], &forever)
                .unwrap(),
            vec![
                Some(Banned {
                    count: 1,
                    expires: None
                });
                2
            ]
        );
        // Already active: not banned twice, count unchanged.
        assert_eq!(s.ban(&nb("192.0.2.1", 200), &forever).unwrap(), None);
        let all = s.active().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].addr, "192.0.2.1");
        assert_eq!(
            (all[0].first_ban, all[0].last_ban, all[0].count),
            (100, 100, 1)
        );
        assert_eq!(all[0].event, "ChallengeResponseFailed");
        assert_eq!(all[0].account, "1001");
        assert_eq!(all[0].expires, None);
        assert!(s.is_banned("2001:db8::1").unwrap());
        assert_eq!(
            s.remove_many(&["192.0.2.1", "198.51.100.9"]).unwrap(),
            vec![true, false]
        );
        assert_eq!(s.active().unwrap().len(), 1);
        assert!(!s.is_banned("192.0.2.1").unwrap());
    }

    #[test]
    fn hostile_text_is_stored_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let evil = "x'); DROP TABLE bans; --\u{0}\n$(id)";
        s.ban(
            &NewBan {
                account: evil,
                ..nb("192.0.2.5", 1)
            },
            &forever,
        )
        .unwrap();
        assert_eq!(s.active().unwrap()[0].account, evil);
    }

    #[test]
    fn schema_version_is_set_and_reopen_works() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        {
            let mut s = Store::open(&p).unwrap();
            s.ban(&nb("192.0.2.1", 1), &forever).unwrap();
            assert_eq!(s.query_i64("PRAGMA user_version").unwrap(), SCHEMA_VERSION);
            assert_eq!(
                s.query_i64("SELECT journal_mode = 'wal' FROM pragma_journal_mode")
                    .unwrap(),
                1
            );
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.active().unwrap().len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        Store::open(&p)
            .unwrap()
            .exec("PRAGMA user_version = 99")
            .unwrap();
        let e = Store::open(&p).err().unwrap();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[test]
    fn concurrent_writer_from_second_connection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let mut a = Store::open(&p).unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        // A second connection holds the write lock for a while; `a` must wait (busy
        // timeout), not fail.
        let t = std::thread::spawn(move || {
            let mut b = Store::open(&p2).unwrap();
            b.exec("BEGIN IMMEDIATE").unwrap();
            b.exec("INSERT INTO bans(addr, first_ban, last_ban, count, event, account) VALUES('192.0.2.9', 1, 1, 1, 'manual', '')")
                .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            b.exec("COMMIT").unwrap();
            b.ban(&nb("192.0.2.10", 2), &forever).unwrap();
        });
        locked_rx.recv().unwrap();
        assert!(a.ban(&nb("192.0.2.11", 3), &forever).unwrap().is_some());
        t.join().unwrap();
        let addrs: Vec<String> = a.active().unwrap().into_iter().map(|b| b.addr).collect();
        assert_eq!(addrs, vec!["192.0.2.9", "192.0.2.10", "192.0.2.11"]);
    }

    /// Run as a child by `sigkill_mid_transaction_loses_nothing_committed`: commits two bans,
    /// then opens a transaction with a third and waits to be killed.
    #[test]
    #[ignore = "helper process for sigkill_mid_transaction_loses_nothing_committed"]
    fn child_writer_then_hang() {
        let Ok(path) = std::env::var("AMPERE_STORE_CHILD_DB") else {
            return;
        };
        let mut s = Store::open(Path::new(&path)).unwrap();
        s.ban_many(&[nb("192.0.2.1", 1), nb("192.0.2.2", 2)], &forever)
            .unwrap();
        s.exec("BEGIN IMMEDIATE").unwrap();
        for i in 0..500 {
            let a = format!("198.51.100.{}", i % 250);
            s.exec(&format!("INSERT OR IGNORE INTO bans(addr, first_ban, last_ban, count, event, account) VALUES('{a}', 3, 3, 1, 'x', '')"))
                .unwrap();
        }
        println!("ready");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn sigkill_mid_transaction_loses_nothing_committed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        // Under qemu-user (cross/build.sh TRIPLE test) the child needs the emulator too.
        let runner = std::env::var("AMPERE_TEST_RUNNER").unwrap_or_default();
        let mut runner = runner.split_whitespace();
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match runner.next() {
            Some(emu) => {
                let mut c = Command::new(emu);
                c.args(runner).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args([
                "--exact",
                "store::tests::child_writer_then_hang",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AMPERE_STORE_CHILD_DB", &p)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child died early");
            if line.trim_end().ends_with("ready") {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL, mid-transaction
        child.wait().unwrap();
        let mut s = Store::open(&p).unwrap();
        let addrs: Vec<String> = s.active().unwrap().into_iter().map(|b| b.addr).collect();
        assert_eq!(addrs, vec!["192.0.2.1", "192.0.2.2"]);
        // The database is fully usable after the crash.
        assert!(s.ban(&nb("192.0.2.3", 4), &forever).unwrap().is_some());
    }

    #[test]
    fn expiry_and_escalation_with_an_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let cfg = crate::config::parse(
            b"bantime = 60\nbantime_factor = 2\npermanent_after = 4\n",
            "t",
        )
        .unwrap()
        .config;
        let mut now = 1_000_000;
        let a = "203.0.113.2";
        let ban_at =
            |s: &mut Store, now: i64| s.ban(&nb(a, now), &|n| cfg.ban_expiry(now, n)).unwrap();
        assert_eq!(
            ban_at(&mut s, now),
            Some(Banned {
                count: 1,
                expires: Some(now + 60)
            })
        );
        assert_eq!(s.next_expiry().unwrap(), Some(now + 60));
        assert!(s.expire_due(now + 59).unwrap().is_empty());
        assert_eq!(s.expire_due(now + 60).unwrap(), vec![a]);
        assert!(!s.is_banned(a).unwrap());
        assert_eq!(s.next_expiry().unwrap(), None);
        // The count is remembered: each repeat doubles, the 4th is permanent.
        now += 100;
        assert_eq!(
            ban_at(&mut s, now),
            Some(Banned {
                count: 2,
                expires: Some(now + 120)
            })
        );
        assert_eq!(s.expire_due(now + 120).unwrap(), vec![a]);
        now += 200;
        assert_eq!(
            ban_at(&mut s, now),
            Some(Banned {
                count: 3,
                expires: Some(now + 240)
            })
        );
        assert_eq!(s.expire_due(now + 240).unwrap(), vec![a]);
        now += 300;
        assert_eq!(
            ban_at(&mut s, now),
            Some(Banned {
                count: 4,
                expires: None
            })
        );
        assert!(s.expire_due(i64::MAX).unwrap().is_empty());
        let b = &s.active().unwrap()[0];
        assert_eq!(
            (b.count, b.expires, b.first_ban, b.last_ban),
            (4, None, 1_000_000, now)
        );
        assert_eq!(s.active_count().unwrap(), 1);
    }
}
