//! The daemon's audit, off the loop. Listing a set of a million takes the firewall tool
//! seconds (`nft list set` of 200,000: about 1 s), and reading as many rows takes SQLite as
//! long: neither may hold the loop. So the daemon forks a child (`Survey`) that lists the
//! kernel, Ampere's rules and INPUT's path with the daemon's own backend (its record of
//! what it wrote included), reads the active bans through `ampere --list-active DB` (a fresh
//! process: a forked child must not open SQLite files its parent has open), and sends back
//! only what differs, one line each:
//!
//! ```text
//! L <why>    the kernel could not be listed      F <fault>   a rule fault
//! M <net>    stored, not in the kernel           P <fault>   a fault of INPUT's path
//! S <net>    in the kernel, not stored           p           INPUT's path was read
//! D <why>    the database could not be read      E           the end
//! ```
//!
//! The loop reads the pipe as any other input (at most `READ_PER_TURN` a turn) and repairs
//! what differs at most `REPAIR_PER_TURN` at a time, each checked against the database
//! again (`repair.rs`). The loop's own work grows with the differences, not with the bans.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::repair::Found;
use super::Bans;
use crate::config::Config;
use crate::error::Error;
use crate::firewall::Backend;
use crate::sys::reaper::{self, Forked};
use crate::{error, info, warn};

/// A survey still running after this is killed (and the next one started at the audit
/// after): a hung firewall tool must not stop the audits for good.
const LIMIT: Duration = Duration::from_secs(600);

/// What the loop reads of the child's pipe in one turn.
const READ_PER_TURN: usize = 256 * 1024;

/// Differences repaired in one turn (each a database lookup, in batches to the kernel).
pub(super) const REPAIR_PER_TURN: usize = 2048;

/// The longest line the child writes (a fault quoting a rule), and then some.
const MAX_LINE: usize = 8192;

/// With `SPACED_FROM` active bans or more, a survey is followed by the next no sooner than
/// SPACING times its length: the audit of sets that large keeps to about 1/SPACING of the
/// time. Its cost grows with the sets, and for ipset part of it stalls the bans themselves:
/// every listing of a set has the kernel count its elements with bottom halves off (about
/// 17 ms at a million, which a ban that meets it waits for, whatever the lister's
/// priority). With `audit_interval = 2` a million were listed every 2 s and the bans' p99
/// was 3 to 5 times the empty round's (benches/latency.rs). Fewer bans cost the kernel too
/// little for that to matter, and the time a survey takes on a busy machine (an `iptables
/// -w` waiting for the xtables lock) says nothing of the sets: the configured interval
/// holds. At the default 5 min nothing changes below a survey of 6 s.
const SPACING: u32 = 50;
const SPACED_FROM: i64 = 100_000;

/// How long after a survey that took `took`, with `bans` active bans, the next one starts.
pub(super) fn spaced(interval: Duration, took: Duration, bans: i64) -> Duration {
    if bans < SPACED_FROM {
        return interval;
    }
    interval.max(took.saturating_mul(SPACING))
}

pub(super) struct Survey {
    pid: u32,
    pipe: std::fs::File,
    partial: Vec<u8>,
    found: Found,
    ended: bool,
    started: Instant,
}

impl Bans {
    /// Starts the audit's survey in a child, unless one runs.
    pub(super) fn start_survey(&mut self, cfg: &Config, now: i64) {
        if self.survey.is_some() {
            return;
        }
        let (read, write) = match reaper::pipe() {
            Ok(p) => p,
            Err(e) => {
                error!("audit: cannot make a pipe: {e}");
                return;
            }
        };
        match reaper::fork() {
            Ok(Forked::Child) => {
                reaper::become_helper();
                // Background work: on a 2-core box a listing of a million beside the bans
                // took their p99 from 0.6 to 6.5 ms (benches/latency.rs); a little niced,
                // with the tools it runs.
                reaper::lower_priority();
                drop(read);
                // The child's copy of a turnstile the daemon holds would hold it too.
                drop(self.turn.take());
                let unstored: Vec<IpNet> = self.unstored.iter().map(|u| u.held.net).collect();
                let db = self.store.path().to_string();
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    survey(self.fw.as_ref(), Path::new(&db), &unstored, write)
                }))
                .unwrap_or(101);
                reaper::exit_now(code)
            }
            Ok(Forked::Parent(pid)) => {
                drop(write);
                let pipe = std::fs::File::from(read);
                if let Err(e) = crate::sys::set_nonblocking(pipe.as_raw_fd()) {
                    error!("audit: {e}");
                }
                self.survey = Some(Survey {
                    pid,
                    pipe,
                    partial: Vec::new(),
                    found: Found::default(),
                    ended: false,
                    started: Instant::now(),
                });
            }
            Err(e) => {
                error!("audit: cannot fork the survey: {e}; auditing in the loop");
                self.audit(cfg, now);
            }
        }
    }

    /// The survey's pipe, for the loop's poll.
    pub fn survey_fd(&self) -> Option<RawFd> {
        self.survey.as_ref().map(|s| s.pipe.as_raw_fd())
    }

    /// Reads what the survey sent (at most `READ_PER_TURN`); at its end the differences
    /// wait for `repair_part`.
    pub fn survey_ready(&mut self, now: i64) {
        let Some(s) = self.survey.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        let mut eof = false;
        while total < READ_PER_TURN {
            match s.pipe.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    total += n;
                    s.take(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !eof {
            return;
        }
        let s = self.survey.take().expect("checked above");
        let code = reaper::reaped(s.pid);
        if !s.ended {
            error!(
                "audit: the survey ended early (exit {}); trying again soon",
                code.map_or("unknown".to_string(), |c| c.to_string())
            );
            let _ = reaper::reaped(s.pid);
            self.retry_soon();
            return;
        }
        self.counted_audit(now);
        let took = s.started.elapsed();
        let bans = self.store.active_count().unwrap_or(0);
        let every = spaced(self.audit_interval, took, bans);
        let stretched = every > self.audit_interval;
        if stretched != (self.counters.audit_every_s > self.audit_interval.as_secs()) {
            if stretched {
                info!(
                    "audit: listing the kernel and the database took {:.1} s; audits come every {} s instead of every {} s, to keep to 1/{SPACING} of the time",
                    took.as_secs_f64(),
                    every.as_secs(),
                    self.audit_interval.as_secs()
                );
            } else {
                info!(
                    "audit: every {} s again ({bans} bans, the survey took {:.1} s)",
                    self.audit_interval.as_secs(),
                    took.as_secs_f64()
                );
            }
        }
        self.counters.audit_took_ms = took.as_millis() as u64;
        self.counters.audit_every_s = every.as_secs();
        self.audit_due = Instant::now() + every;
        self.to_repair = Some(s.found);
    }

    /// Repairs part of what the survey found, under the kernel lock: the rule faults, the
    /// path and an unlistable kernel at once, then `REPAIR_PER_TURN` differences a turn.
    pub(super) fn repair_part(&mut self, cfg: &Config, now: i64) {
        let Some(found) = self.to_repair.as_mut() else {
            return;
        };
        let first = if found.unlisted.is_some() || found.path.is_some() || !found.faults.is_empty()
        {
            Found {
                unlisted: found.unlisted.take(),
                faults: std::mem::take(&mut found.faults),
                path: found.path.take(),
                ..found.take_part(REPAIR_PER_TURN)
            }
        } else {
            found.take_part(REPAIR_PER_TURN)
        };
        if found.is_empty() {
            self.to_repair = None;
        }
        self.repair(cfg, first, now);
    }

    /// Whether repairs wait for the next turn.
    pub(super) fn repairing(&self) -> bool {
        self.to_repair.is_some()
    }

    /// Stops a survey under way (at a stop).
    pub(super) fn end_survey(&mut self) {
        if let Some(s) = self.survey.take() {
            reaper::kill_hard(s.pid);
            let _ = reaper::reaped(s.pid);
        }
    }

    /// Kills a survey that overstayed `LIMIT`.
    pub(super) fn survey_timers(&mut self) {
        if self
            .survey
            .as_ref()
            .is_some_and(|s| s.started.elapsed() > LIMIT)
        {
            let s = self.survey.take().expect("checked above");
            warn!(
                "audit: the survey ran past {} s (a firewall tool hung?): killed",
                LIMIT.as_secs()
            );
            reaper::kill_hard(s.pid);
            let _ = reaper::reaped(s.pid);
            self.retry_soon();
        }
    }
}

impl Survey {
    /// Takes in bytes of the pipe, line by line.
    fn take(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(at) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.partial[start..start + at]).into_owned();
            self.line(&line);
            start += at + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
    }

    fn line(&mut self, line: &str) {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let net = || crate::addr::parse_net(rest).ok();
        let f = &mut self.found;
        match kind {
            "M" => f.missing.extend(net()),
            "S" => f.strays.extend(net()),
            "L" => f.unlisted = Some(rest.to_string()),
            "F" => f.faults.push(rest.to_string()),
            "p" => f.path = Some(f.path.take().unwrap_or_default()),
            "P" => f.path.get_or_insert_with(Vec::new).push(rest.to_string()),
            "D" => error!("audit: the survey could not read the database: {rest}"),
            "E" => self.ended = true,
            _ => {}
        }
    }
}

/// The child's work: returns its exit code.
fn survey(fw: &dyn Backend, db: &Path, unstored: &[IpNet], out: OwnedFd) -> i32 {
    let mut w = std::io::BufWriter::new(std::fs::File::from(out));
    let one_line = |s: &str| s.replace('\n', " ");
    let (kernel, faults) = match fw.list_and_faults() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(w, "L {}\nE", one_line(&e.to_string()));
            return 0;
        }
    };
    if let Ok(faults) = faults {
        for f in faults {
            let _ = writeln!(w, "F {}", one_line(&f));
        }
    }
    if let Ok(path) = fw.path_faults() {
        let _ = writeln!(w, "p");
        for f in path {
            let _ = writeln!(w, "P {}", one_line(&f));
        }
    }
    let mut stored: HashSet<IpNet> = unstored.iter().copied().collect();
    if let Err(e) = read_active(db, &mut stored) {
        let _ = writeln!(w, "D {}\nE", one_line(&e.to_string()));
        return 0;
    }
    let found = Found::diff(&kernel, &stored);
    for n in &found.missing {
        let _ = writeln!(w, "M {n}");
    }
    for n in &found.strays {
        let _ = writeln!(w, "S {n}");
    }
    let _ = writeln!(w, "E");
    match w.flush() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// The active bans of `db`, from `ampere --list-active` (a process of its own).
fn read_active(db: &Path, into: &mut HashSet<IpNet>) -> Result<(), Error> {
    let mut child = crate::exec::itself()
        .arg("--list-active")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cannot run ampere --list-active", e))?;
    let out = BufReader::new(child.stdout.take().expect("piped"));
    for line in out.lines() {
        let line = line.map_err(|e| Error::io("ampere --list-active", e))?;
        if let Ok(n) = crate::addr::parse_net(&line) {
            into.insert(n);
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("ampere --list-active", e))?;
    if status.success() {
        Ok(())
    } else {
        // It printed the store's error (`list_active`): the listing failed as a whole.
        Err(Error::Protocol(format!(
            "ampere --list-active: {}",
            crate::log::printable(err.trim().as_bytes())
        )))
    }
}

/// `ampere --list-active DB`: the address of every active ban, one a line.
pub fn list_active(db: &Path) -> ExitCode {
    let store = match crate::store::Store::open_read_only(db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut broken = false;
    let read = store.for_each_active_addr(|a| {
        broken |= writeln!(w, "{a}").is_err();
    });
    match read {
        Ok(()) if !broken && w.flush().is_ok() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survey_s_lines_are_read_across_reads() {
        let (r, _w) = reaper::pipe().unwrap();
        let mut s = Survey {
            pid: 0,
            pipe: std::fs::File::from(r),
            partial: Vec::new(),
            found: Found::default(),
            ended: false,
            started: Instant::now(),
        };
        s.take(b"F nft: table inet ampere: `jump guard` is gone\np\nP ipt");
        s.take(b"ables: no rule\nM 192.0.2.1/32\nS 2001:db8::/64\nM junk\n");
        assert!(!s.ended);
        s.take(b"E\n");
        assert!(s.ended);
        assert_eq!(
            s.found.missing,
            [crate::addr::parse_net("192.0.2.1").unwrap()]
        );
        assert_eq!(
            s.found.strays,
            [crate::addr::parse_net("2001:db8::/64").unwrap()]
        );
        assert_eq!(s.found.faults.len(), 1);
        assert_eq!(s.found.path, Some(vec!["iptables: no rule".to_string()]));
    }

    #[test]
    fn a_long_survey_spaces_the_next_one() {
        let s = Duration::from_secs;
        let many = SPACED_FROM;
        // A few thousand bans: the configured interval, however long a busy machine took.
        assert_eq!(spaced(s(2), Duration::from_millis(30), 5_000), s(2));
        assert_eq!(spaced(s(1), s(3), many - 1), s(1));
        assert_eq!(spaced(s(300), s(5), 1_000_000), s(300));
        // A million listed every 2 s in 1.3 s: every 65 s.
        assert_eq!(spaced(s(2), Duration::from_millis(1300), 1_000_000), s(65));
        assert_eq!(spaced(s(300), s(10), many), s(500));
    }
}
