//! The ban database: one SQLite file (WAL, busy timeout) shared by the daemon and the admin
//! commands. Every value goes in through a bound parameter: AccountID and the like come from
//! attackers. Addresses go in and come out as `IpNet`; the text form is only the key.

mod admin;
mod known;
mod prune;
mod pulled;
mod queries;
mod sqlite;
mod tally;

pub use prune::Pruned;

use std::path::Path;

use ipnet::IpNet;

use crate::addr;
use crate::ban::{Ban, BanRequest, Origin};
use crate::score::Evidence;
pub use queries::Record;
use sqlite::{Db, Result, Stmt};
pub use sqlite::{ErrorKind, StoreError};
use tally::Tally;

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 9;

/// Each step takes the schema from version N to N + 1.
const MIGRATIONS: [&str; 9] = [
    "
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
",
    "
ALTER TABLE bans ADD COLUMN penalty INTEGER NOT NULL DEFAULT 0;  -- penalty that banned it
ALTER TABLE bans ADD COLUMN origin TEXT NOT NULL DEFAULT 'daemon'; -- daemon | manual
ALTER TABLE bans ADD COLUMN service TEXT NOT NULL DEFAULT '';       -- PJSIP, AMI, ...
UPDATE bans SET origin = 'manual' WHERE event = 'manual';
",
    "
ALTER TABLE bans ADD COLUMN folded_into TEXT; -- the subnet ban that took this one's place
",
    "
CREATE INDEX IF NOT EXISTS bans_last ON bans(last_ban); -- `status`: the latest bans
",
    "
CREATE INDEX IF NOT EXISTS bans_origin ON bans(active, origin); -- `max_bans` counts the daemon's
",
    "
ALTER TABLE bans ADD COLUMN pulled INTEGER; -- the latest pull from CrowdSec that listed it
",
    "
CREATE TABLE IF NOT EXISTS known (  -- who authenticated or is registered from where
    addr    TEXT NOT NULL,            -- the address as Asterisk reported it (canonical)
    account TEXT NOT NULL,            -- the account's user part
    source  TEXT NOT NULL,            -- login | sip-registration | pjsip-contact | ...
    first   INTEGER NOT NULL,         -- unix seconds first seen
    last    INTEGER NOT NULL,         -- and last seen
    PRIMARY KEY (addr, account)
);
CREATE INDEX IF NOT EXISTS known_last ON known(last);
",
    "
ALTER TABLE bans ADD COLUMN evidence TEXT NOT NULL DEFAULT 'strong'; -- strong | weak (forgeable)
",
    tally::MIGRATION,
];

/// How long a writer waits for another connection's lock before giving up.
const BUSY_MS: i32 = 10_000;

/// Whether `r` takes the place of its network's active ban (the rest stay as they are):
/// strong evidence over a weak ban, and the daemon's own judgment over CrowdSec's (whose
/// deletion would otherwise free an attacker that attacked here too). `Bans::flush` swaps
/// the kernel's entry. (An admin's `-a` takes over a temporary ban its own way:
/// `make_permanent`.)
pub fn takes_over(r: &BanRequest, active_weak: bool, active_origin: Origin) -> bool {
    r.origin == Origin::Daemon
        && ((active_weak && r.evidence() == Evidence::Strong) || active_origin == Origin::Crowdsec)
}

pub struct Store {
    db: Db,
    /// The file did not exist before this process opened it (`create`).
    new: bool,
}

impl Store {
    /// Opens (creating if needed) the database, switches it to WAL and sets a busy timeout so
    /// that the daemon and an admin's `ampere -a` can write at the same time.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Db::open(path, BUSY_MS)?;
        // Switching a new file to WAL takes a lock that SQLite's busy handler does not wait
        // for: another process may be creating the same file this very moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(BUSY_MS as u64);
        loop {
            match db.exec("PRAGMA journal_mode = WAL") {
                Err(e) if e.kind == ErrorKind::Busy && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r?,
            }
        }
        db.exec("PRAGMA synchronous = NORMAL")?;
        // Bounded page cache: Ampere's working set is tiny and routers have little memory.
        db.exec("PRAGMA cache_size = -256")?;
        let store = Store { db, new: false };
        store.migrate()?;
        Ok(store)
    }

    /// As `open`, making the database's directory first if it is missing (at start, and
    /// when it was deleted under the running daemon).
    pub fn create(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError {
                    kind: ErrorKind::CantOpen,
                    msg: format!("cannot create {}: {e}", dir.display()),
                })?;
            }
        }
        let new = !path.exists();
        Store::open(path).map(|s| Store { new, ..s })
    }

    /// Whether this process made the file (it did not exist when `create` opened it).
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// How long a write waits for another connection's lock: the daemon waits briefly and
    /// retries from its loop, so that an admin's bulk `-a` never stalls event handling.
    pub fn set_busy_ms(&self, ms: i32) {
        self.db.set_busy_ms(ms);
    }

    /// The file was deleted or replaced since it was opened (see `Db::has_moved`).
    pub fn has_moved(&self) -> bool {
        self.db.has_moved()
    }

    pub fn path(&self) -> &str {
        &self.db.path
    }

    /// Leaves WAL checkpoints to `checkpoint`, called by the daemon from its timer: SQLite's
    /// automatic checkpoint runs inside the commit that fills the WAL and syncs the database
    /// file, which put 2 to 30 ms on every few hundredth ban.
    pub fn defer_checkpoints(&self) -> Result<()> {
        self.db.exec("PRAGMA wal_autocheckpoint = 0")
    }

    /// Copies the WAL into the database file; PASSIVE never waits for another connection
    /// (an admin's `ampere -a`), it just does what it can now.
    pub fn checkpoint(&self) -> Result<()> {
        self.db.exec("PRAGMA wal_checkpoint(PASSIVE)")
    }

    /// Brings the schema up to date, one step per transaction. The version is read under
    /// the write lock: another connection (the daemon's start, an admin's `ampere -a`) may be
    /// migrating the same new file at this moment.
    fn migrate(&self) -> Result<()> {
        loop {
            self.db.exec("BEGIN IMMEDIATE")?;
            let step = self.db.query_i64("PRAGMA user_version").and_then(|version| {
                if version > SCHEMA_VERSION {
                    return Err(self.db.schema_error(format!(
                        "schema version {version} is newer than this Ampere understands ({SCHEMA_VERSION})"
                    )));
                }
                let Some(sql) = MIGRATIONS.get(version as usize) else {
                    return Ok(false);
                };
                self.db.exec(sql)?;
                self.db.exec(&format!("PRAGMA user_version = {}", version + 1))?;
                Ok(true)
            });
            if !self.finish(step)? {
                return Ok(());
            }
        }
    }

    /// Records `requests` in one transaction: each becomes its network's next ban, counted
    /// and timed here (`BanRequest::settle`: an escalating one ends as `escalation(at, count)`
    /// says, so that repeat offenders escalate). Returns per request the ban it became, or
    /// None when its network was an active ban already (then no firewall rule must be
    /// added) — unless that ban was weak and this request is strong: then it takes its
    /// place.
    pub fn record(
        &mut self,
        requests: &[BanRequest],
        escalation: &dyn Fn(i64, i64) -> Option<i64>,
    ) -> Result<Vec<Option<Ban>>> {
        self.in_transaction(|db| {
            let mut find = db.prepare(
                "SELECT count, active, first_ban, evidence, origin FROM bans WHERE addr = ?1",
            )?;
            let mut put = db.prepare(
                "INSERT INTO bans(addr, first_ban, last_ban, count, event, account, expires,
                                  active, penalty, origin, service, evidence)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11)
                 ON CONFLICT(addr) DO UPDATE SET
                    last_ban = excluded.last_ban, count = excluded.count, event = excluded.event,
                    account = excluded.account, expires = excluded.expires, active = 1,
                    penalty = excluded.penalty, origin = excluded.origin,
                    service = excluded.service, folded_into = NULL,
                    evidence = excluded.evidence, pulled = NULL",
            )?;
            let mut out = Vec::with_capacity(requests.len());
            let mut tally = Tally::default();
            for r in requests {
                let key = addr::net_text(&r.net);
                find.reset();
                find.bind_text(1, &key)?;
                let (count, active, first, weak, origin) = if find.step_row()? {
                    (
                        find.column_i64(0),
                        find.column_i64(1) != 0,
                        find.column_i64(2),
                        Evidence::parse(&find.column_text(3)) == Evidence::Weak,
                        Origin::parse(&find.column_text(4)),
                    )
                } else {
                    (0, false, r.at, false, Origin::Daemon)
                };
                if active && !takes_over(r, weak, origin) {
                    out.push(None);
                    continue;
                }
                let b = r.settle(count, first, escalation);
                put.reset();
                put.bind_text(1, &key)?;
                put.bind_i64(2, b.first)?;
                put.bind_i64(3, b.since)?;
                put.bind_i64(4, b.count)?;
                put.bind_text(5, &b.reason)?;
                put.bind_text(6, &b.account)?;
                put.bind_opt_i64(7, b.expires)?;
                put.bind_i64(8, i64::from(b.penalty))?;
                put.bind_text(9, b.origin.as_str())?;
                put.bind_text(10, &b.service)?;
                put.bind_text(11, b.evidence.as_str())?;
                put.step_done()?;
                if active {
                    tally.moved(origin, b.origin);
                } else {
                    tally.add(b.origin, 1);
                }
                out.push(Some(b));
            }
            tally.write(db)?;
            Ok(out)
        })
    }

    /// Ends at most `n` of the bans whose time is up at `now`, those that ended first first;
    /// the rows stay (inactive) so that the count keeps escalating. Returns the networks,
    /// for the firewall.
    pub fn expire_due(&mut self, now: i64, n: usize) -> Result<Vec<IpNet>> {
        self.end_earliest(now, n)
    }

    /// Ends up to `n` active temporary bans, those closest to their end first (`max_bans`
    /// making room). The rows stay, as after an expiry. Returns the networks, for the
    /// firewall.
    pub fn end_soonest_temporary(&mut self, n: usize) -> Result<Vec<IpNet>> {
        self.end_earliest(i64::MAX, n)
    }

    /// Ends up to `n` active temporary bans that end by `by`, the earliest first (the index
    /// on (active, expires) finds them without a scan).
    fn end_earliest(&mut self, by: i64, n: usize) -> Result<Vec<IpNet>> {
        self.in_transaction(|db| {
            let mut st = db.prepare(
                "UPDATE bans SET active = 0 WHERE addr IN (
                    SELECT addr FROM bans WHERE active = 1 AND expires IS NOT NULL
                      AND expires <= ?1 ORDER BY expires LIMIT ?2)
                 RETURNING addr, origin",
            )?;
            st.bind_i64(1, by)?;
            st.bind_i64(2, i64::try_from(n).unwrap_or(i64::MAX))?;
            ended_nets(db, &mut st)
        })
    }

    /// Folds the active daemon bans among `members` into the subnet ban `into` that covers
    /// them: inactive, remembering `into` (the count stays for escalation). A ban that
    /// would outlast the subnet's (`until`, None = permanent) stays. Returns the networks
    /// folded, for the firewall.
    pub fn fold_into(
        &mut self,
        members: &[IpNet],
        into: &IpNet,
        until: Option<i64>,
    ) -> Result<Vec<IpNet>> {
        let into = addr::net_text(into);
        self.in_transaction(|db| {
            let mut st = db.prepare(
                "UPDATE bans SET active = 0, folded_into = ?2
                 WHERE addr = ?1 AND active = 1 AND origin = 'daemon'
                   AND (?3 IS NULL OR (expires IS NOT NULL AND expires <= ?3))
                 RETURNING 1",
            )?;
            let mut out = Vec::new();
            for m in members {
                st.reset();
                st.bind_text(1, &addr::net_text(m))?;
                st.bind_text(2, &into)?;
                st.bind_opt_i64(3, until)?;
                if st.step_row()? {
                    out.push(*m);
                }
                while st.step_row()? {}
            }
            let mut tally = Tally::default();
            tally.add(Origin::Daemon, -(out.len() as i64));
            tally.write(db)?;
            Ok(out)
        })
    }

    /// How many bans were folded into the subnet ban `into`.
    pub fn folded_count(&self, into: &IpNet) -> Result<i64> {
        let mut st = self
            .db
            .prepare("SELECT count(*) FROM bans WHERE folded_into = ?1")?;
        st.bind_text(1, &addr::net_text(into))?;
        Ok(if st.step_row()? { st.column_i64(0) } else { 0 })
    }

    /// When the next active ban ends, if any ends at all.
    pub fn next_expiry(&self) -> Result<Option<i64>> {
        let mut st = self
            .db
            .prepare("SELECT min(expires) FROM bans WHERE active = 1 AND expires IS NOT NULL")?;
        Ok(if st.step_row()? {
            st.column_opt_i64(0)
        } else {
            None
        })
    }

    /// Moves the times of the bans made while the wall clock was not set (before `unset`) by
    /// `delta` seconds, now that it is. Returns how many.
    pub fn shift_times_before(&mut self, unset: i64, delta: i64) -> Result<usize> {
        self.in_transaction(|db| {
            let mut st = db.prepare(
                "UPDATE bans SET last_ban = last_ban + ?1,
                    first_ban = CASE WHEN first_ban < ?2 THEN first_ban + ?1 ELSE first_ban END,
                    expires = expires + ?1
                 WHERE last_ban < ?2 RETURNING 1",
            )?;
            st.bind_i64(1, delta)?;
            st.bind_i64(2, unset)?;
            let mut n = 0;
            while st.step_row()? {
                n += 1;
            }
            Ok(n)
        })
    }

    /// Whether `net` is an active ban now.
    pub fn is_banned(&self, net: &IpNet) -> Result<bool> {
        let mut st = self
            .db
            .prepare("SELECT 1 FROM bans WHERE addr = ?1 AND active = 1")?;
        st.bind_text(1, &addr::net_text(net))?;
        st.step_row()
    }

    /// The active ban of exactly `net`, if any.
    pub fn active_ban(&self, net: &IpNet) -> Result<Option<Ban>> {
        let mut st = self.db.prepare(&format!(
            "SELECT {} FROM bans WHERE addr = ?1 AND active = 1",
            queries::BAN_COLUMNS
        ))?;
        st.bind_text(1, &addr::net_text(net))?;
        Ok(if st.step_row()? {
            queries::ban_from(&self.db.path, &st)
        } else {
            None
        })
    }

    /// Active bans, oldest first. A row whose address does not parse (edited by hand) is
    /// logged and left out: it cannot become a firewall rule.
    pub fn active(&self) -> Result<Vec<Ban>> {
        let mut st = self.db.prepare(&format!(
            "SELECT {} FROM bans WHERE active = 1 ORDER BY first_ban, addr",
            queries::BAN_COLUMNS
        ))?;
        let mut out = Vec::new();
        while st.step_row()? {
            out.extend(queries::ban_from(&self.db.path, &st));
        }
        Ok(out)
    }

    /// Makes every later write fail as on a read-only file (root ignores file modes).
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self) {
        self.db.exec("PRAGMA query_only = 1").unwrap();
    }

    #[cfg(test)]
    pub(crate) fn allow_writes(&self) {
        self.db.exec("PRAGMA query_only = 0").unwrap();
    }

    /// Takes the write lock as an admin's `-a` does, until the connection is dropped.
    #[cfg(test)]
    pub(crate) fn hold_write_lock(&self) {
        self.db.exec("BEGIN IMMEDIATE").unwrap();
    }

    fn in_transaction<T>(&mut self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.db.exec("BEGIN IMMEDIATE")?;
        let r = f(&self.db);
        self.finish(r)
    }

    fn finish<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => {
                if let Err(e) = self.db.exec("COMMIT") {
                    let _ = self.db.exec("ROLLBACK");
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.exec("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// The bans a statement ended (`RETURNING addr, origin`), each parsed, taken off the tally.
fn ended_nets(db: &Db, st: &mut Stmt) -> Result<Vec<IpNet>> {
    let mut out = Vec::new();
    let mut tally = Tally::default();
    while st.step_row()? {
        tally.add(Origin::parse(&st.column_text(1)), -1);
        out.extend(parsed(&db.path, &st.column_text(0)));
    }
    tally.write(db)?;
    Ok(out)
}

/// A stored address as a network; an unparsable one is logged (it is never silently lost).
fn parsed(db: &str, text: &str) -> Option<IpNet> {
    match addr::parse_net(text) {
        Ok(net) => Some(net),
        Err(e) => {
            crate::error!(
                "{db}: row `{}` left out: {e}",
                crate::log::printable(text.as_bytes())
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
