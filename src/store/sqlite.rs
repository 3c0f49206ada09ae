//! The SQLite C API behind a small safe surface: a connection, prepared statements with bound
//! parameters, and errors classified by SQLite's result code (never by message text). All
//! of Ampere's SQLite `unsafe` lives here.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::path::Path;
use std::ptr;

use libsqlite3_sys as ffi;

/// What went wrong, as far as a caller needs to decide what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another connection holds the lock (an admin's `ampere -a`): try again later.
    Busy,
    /// The disk or the file system quota is full.
    Full,
    /// The file or its directory is read-only, or permission is denied.
    ReadOnly,
    /// The file cannot be opened or created (missing directory, permissions).
    CantOpen,
    /// An I/O error (the directory was deleted, a disk failed).
    Io,
    /// Not a database, or a damaged one.
    Corrupt,
    /// Written by a newer Ampere.
    Schema,
    Other,
}

#[derive(Debug)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub msg: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

fn kind_of(code: c_int) -> ErrorKind {
    match code & 0xff {
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => ErrorKind::Busy,
        ffi::SQLITE_FULL => ErrorKind::Full,
        ffi::SQLITE_READONLY | ffi::SQLITE_PERM | ffi::SQLITE_AUTH => ErrorKind::ReadOnly,
        ffi::SQLITE_CANTOPEN => ErrorKind::CantOpen,
        ffi::SQLITE_IOERR => ErrorKind::Io,
        ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}

pub struct Db {
    raw: *mut ffi::sqlite3,
    pub path: String,
}

impl Db {
    pub fn open(path: &Path, busy_ms: c_int) -> Result<Db> {
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
        Db::open_with(path, busy_ms, flags)
    }

    /// The file as it is, for reading only: never made, never changed.
    pub fn open_read_only(path: &Path, busy_ms: c_int) -> Result<Db> {
        Db::open_with(path, busy_ms, ffi::SQLITE_OPEN_READONLY)
    }

    fn open_with(path: &Path, busy_ms: c_int, mode: c_int) -> Result<Db> {
        let shown = path.display().to_string();
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| StoreError {
            kind: ErrorKind::CantOpen,
            msg: format!("{shown}: path contains a NUL byte"),
        })?;
        let mut raw = ptr::null_mut();
        let flags = mode | ffi::SQLITE_OPEN_NOMUTEX | ffi::SQLITE_OPEN_EXRESCODE;
        // SAFETY: cpath is NUL-terminated and outlives the call; raw receives a handle that
        // we own from here on (closed in Drop, also when open fails).
        let rc = unsafe { ffi::sqlite3_open_v2(cpath.as_ptr(), &mut raw, flags, ptr::null()) };
        let db = Db { raw, path: shown };
        if rc != ffi::SQLITE_OK {
            return Err(db.error("cannot open database"));
        }
        // SAFETY: raw is a valid open handle.
        unsafe { ffi::sqlite3_busy_timeout(db.raw, busy_ms) };
        Ok(db)
    }

    pub fn set_busy_ms(&self, ms: c_int) {
        // SAFETY: raw is a valid open handle.
        unsafe { ffi::sqlite3_busy_timeout(self.raw, ms) };
    }

    /// Whether the file behind this connection was deleted, renamed or replaced: SQLite
    /// keeps writing to the open file then, and every write is lost at the next open.
    pub fn has_moved(&self) -> bool {
        let mut moved: c_int = 0;
        // SAFETY: raw is open; "main" is NUL-terminated; HAS_MOVED writes one int through
        // the pointer, which points to a live c_int.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                self.raw,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_HAS_MOVED,
                (&mut moved as *mut c_int).cast(),
            )
        };
        // A connection that cannot tell is treated as moved: reopening is harmless.
        rc != ffi::SQLITE_OK || moved != 0
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        let csql = CString::new(sql).map_err(|_| StoreError {
            kind: ErrorKind::Other,
            msg: "SQL contains NUL".into(),
        })?;
        // SAFETY: raw is open; csql is NUL-terminated; no callback, no error-message pointer.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.raw,
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

    pub fn query_i64(&self, sql: &str) -> Result<i64> {
        let mut st = self.prepare(sql)?;
        Ok(if st.step_row()? { st.column_i64(0) } else { 0 })
    }

    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: the handle is open; sql points to sql.len() valid bytes (no NUL needed with
        // an explicit length); raw receives a statement owned by the returned Stmt.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.raw,
                sql.as_ptr().cast::<c_char>(),
                sql.len() as c_int,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK || raw.is_null() {
            return Err(self.error("prepare"));
        }
        Ok(Stmt { raw, db: self })
    }

    /// The latest error on this connection, with its kind.
    pub fn error(&self, what: &str) -> StoreError {
        // SAFETY: raw may be null only if allocation failed, in which case sqlite3_errmsg
        // returns a static "out of memory" string and the error code is NOMEM; the message
        // pointer is valid until the next call on this handle and is copied at once.
        let (code, msg) = unsafe {
            (
                ffi::sqlite3_extended_errcode(self.raw),
                CStr::from_ptr(ffi::sqlite3_errmsg(self.raw))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        StoreError {
            kind: kind_of(code),
            msg: format!("{}: {what}: {msg}", self.path),
        }
    }

    pub fn schema_error(&self, msg: String) -> StoreError {
        StoreError {
            kind: ErrorKind::Schema,
            msg: format!("{}: {msg}", self.path),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: every Stmt borrows the Db, so none is alive here; sqlite3_close accepts
        // the null handle a failed open may leave.
        unsafe { ffi::sqlite3_close(self.raw) };
    }
}

pub struct Stmt<'a> {
    raw: *mut ffi::sqlite3_stmt,
    db: &'a Db,
}

impl Stmt<'_> {
    pub fn reset(&mut self) {
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
            Err(self.db.error("bind"))
        }
    }

    pub fn bind_text(&mut self, idx: c_int, v: &str) -> Result<()> {
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

    pub fn bind_i64(&mut self, idx: c_int, v: i64) -> Result<()> {
        // SAFETY: raw is a valid statement; idx is checked by SQLite.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw, idx, v) };
        self.check(rc)
    }

    pub fn bind_opt_i64(&mut self, idx: c_int, v: Option<i64>) -> Result<()> {
        match v {
            Some(v) => self.bind_i64(idx, v),
            // SAFETY: raw is a valid statement; idx is checked by SQLite.
            None => self.check(unsafe { ffi::sqlite3_bind_null(self.raw, idx) }),
        }
    }

    /// Steps once; true if a row is available.
    pub fn step_row(&mut self) -> Result<bool> {
        // SAFETY: raw is a valid statement.
        match unsafe { ffi::sqlite3_step(self.raw) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(self.db.error("step")),
        }
    }

    pub fn step_done(&mut self) -> Result<()> {
        while self.step_row()? {}
        Ok(())
    }

    pub fn column_i64(&self, i: c_int) -> i64 {
        // SAFETY: called only after step_row returned a row; SQLite converts types as needed.
        unsafe { ffi::sqlite3_column_int64(self.raw, i) }
    }

    pub fn column_opt_i64(&self, i: c_int) -> Option<i64> {
        // SAFETY: as for column_i64.
        let ty = unsafe { ffi::sqlite3_column_type(self.raw, i) };
        (ty != ffi::SQLITE_NULL).then(|| self.column_i64(i))
    }

    pub fn column_text(&self, i: c_int) -> String {
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
