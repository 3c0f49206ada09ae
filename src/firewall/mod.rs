//! Firewall backends. Commands are executed directly with an argument vector (execve through
//! `exec::command`, never a shell), and only ever receive networks that were parsed into
//! `IpNet` first.

mod ipset;
mod iptables;
mod limit;
mod nft;
mod path;
mod shell;
mod started;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use ipnet::IpNet;

use crate::config::{BackendKind, Config};
use crate::exec;

pub use ipset::Ipset;
pub use iptables::Iptables;
pub use limit::{LimitKind, SipLimit};
pub use nft::Nft;
pub use started::Started;

/// What went wrong, as far as a caller needs to decide what to do next. The tools say it in
/// text; `classify` reads that text in this one place so that no caller has to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The tool is not installed (or not at the configured path).
    MissingTool,
    /// The chain, set or table the admin (or Ampere at start) set up is gone.
    MissingChain,
    /// Not root, or no CAP_NET_ADMIN.
    Permission,
    /// Another program holds the xtables lock or the kernel is busy: try again.
    Busy,
    /// The set is full (ipset `maxelem`).
    Full,
    /// The element or rule to remove is not there (already expired in the kernel).
    NotThere,
    /// An IPv6 ban while `ipv6 = no`.
    Ipv6Off,
    /// The tool ran and failed for another reason, or did not answer.
    Failed,
}

#[derive(Debug)]
pub struct FwError {
    pub kind: ErrorKind,
    pub msg: String,
}

impl FwError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> FwError {
        FwError {
            kind,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for FwError {}

pub type Result<T> = std::result::Result<T, FwError>;

/// What the kernel holds of a ban: its network, and when it ends (None: never). Backends see
/// nothing else of a ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub net: IpNet,
    pub expires: Option<i64>,
}

impl Entry {
    /// Seconds left at `now` for a kernel timeout (None = permanent, else at least 1). None
    /// too while the wall clock is not set: Ampere lifts the ban itself once it is.
    pub fn timeout(&self, now: i64) -> Option<u64> {
        if !crate::clock::is_set(now) {
            return None;
        }
        crate::clock::remaining(self.expires, now)
    }
}

/// The bans a `restore` puts in place, read once for each pass a backend makes (a family, a
/// set): from the database row by row, a million are never all held in memory at once.
pub trait Source {
    /// Calls `f` with every entry, in any order.
    fn each(&self, f: &mut dyn FnMut(Entry)) -> Result<()>;
}

/// Entries held in memory, as a `Source`.
pub struct Listed<'a>(pub &'a [Entry]);

impl Source for Listed<'_> {
    fn each(&self, f: &mut dyn FnMut(Entry)) -> Result<()> {
        self.0.iter().for_each(|e| f(*e));
        Ok(())
    }
}

/// What every backend offers the daemon and the admin commands. A ban reaches the kernel
/// with the seconds it has left at `now`: backends with native timeouts (ipset, nft) let the
/// kernel expire it even while Ampere is not running; Ampere removes it at its expiry in any
/// case.
pub trait Backend {
    /// Verifies the pieces the admin must provide (a chain, the tools, kernel support) and
    /// creates what the backend owns (sets, its nft table) when missing, without touching
    /// bans that are already there. Fails with the commands to run.
    fn prepare(&self) -> Result<()>;
    /// Replaces every ban with exactly `bans`, in one batch per tool, written to the tool as
    /// they are read.
    fn restore(&self, bans: &dyn Source, now: i64) -> Result<()>;
    fn ban(&self, ban: &Entry, now: i64) -> Result<()>;
    /// Several bans with one command per tool, so that a burst of bans costs one exec and
    /// does not stall the AMI reader. All or nothing where the tool allows (restore files).
    fn ban_many(&self, bans: &[Entry], now: i64) -> Result<()> {
        bans.iter().try_for_each(|b| self.ban(b, now))
    }
    /// Removing a ban that is not there (already expired in the kernel) is not an error.
    fn unban(&self, net: &IpNet) -> Result<()>;
    /// Several unbans with one command per tool where it allows; an error means the caller
    /// must go one by one (some may be gone already).
    fn unban_many(&self, nets: &[IpNet]) -> Result<()> {
        nets.iter().try_for_each(|n| self.unban(n))
    }
    /// Whether `ban_many` of bans the kernel may hold already never makes a second copy
    /// (ipset's `-exist`, nft's `add element`): then making sure of many bans is one batch,
    /// without a listing.
    fn adds_idempotently(&self) -> bool {
        false
    }
    /// `ban_many`, started in a tool of its own and waited for by `Started::finish`: an
    /// admin's `-a` of many stores the next part meanwhile (`bans/bulk.rs`). Only where
    /// `adds_idempotently`: a batch that failed is applied again ban by ban. None: the
    /// caller runs `ban_many`.
    fn ban_many_started(&self, _bans: &[Entry], _now: i64) -> Option<Started> {
        None
    }
    /// The networks banned in the kernel now (one listing per family), for the audit.
    fn list(&self) -> Result<Vec<IpNet>>;
    /// A ban that the kernel should hold but may not (the audit, an event from a banned
    /// address): applied without ever making a second copy.
    fn ensure(&self, ban: &Entry, now: i64) -> Result<()> {
        self.ban(ban, now)
    }
    /// Puts up (Some) or takes down (None) the per-source limit on the SIP ports (the blind
    /// or the flood guard). Putting one up replaces the one in place; the backend keeps it
    /// through a `restore`, so that an audit that makes the firewall again keeps it too.
    fn limit_sip(&self, limit: Option<&SipLimit>) -> Result<()>;
    /// Whether the kernel holds exactly `net` now (for `why`): one cheap query, no listing.
    fn holds(&self, net: &IpNet) -> Result<bool>;
    /// How the structure Ampere owns (its chain's rules and their order, its sets'
    /// definitions, its nft table) differs from what it last wrote: a flushed chain, a stray
    /// rule above the bans, a lost SIP limit. Empty when intact; the audit then `restore`s.
    fn faults(&self) -> Result<Vec<String>>;
    /// `list` and `faults` together, for the audit's survey, with each set listed once:
    /// ipset reads both from one `ipset save` per set, nft from one `nft list table`. Every
    /// listing of an ipset set makes the kernel count its elements with bottom halves off
    /// (the set's header): about 17 ms a million, a stall of one core that a ban meeting it
    /// waits for; nft's `-t` listing of the shape fetched every element too.
    fn list_and_faults(&self) -> Result<(Vec<IpNet>, Result<Vec<String>>)> {
        Ok((self.list()?, self.faults()))
    }
    /// The daemon's start: a backend that keeps its tool running behind a pipe (nft) starts
    /// it now, and says once in the log when it cannot.
    fn keep_running(&self) {}
    /// How the backend runs its tool, for `status`, where that is worth a line.
    fn describe(&self) -> Option<String> {
        None
    }
    /// What on the admin's side keeps the bans from dropping (no jump into the chain, an
    /// `ESTABLISHED` accept before it): reported, never changed.
    fn path_faults(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Past this many bans, iptables' one rule per ban makes every command slow: each reads the
/// whole ruleset (`benches/restore.rs`: a ban 2.0 ms with none in place, 22.7 ms with
/// 100,000; `ampere -a` of one address 5.6 and 485 ms).
pub const IPTABLES_SLOW_ABOVE: i64 = 10_000;

/// What to tell the admin when `bans` bans make the backend slow; None when they do not.
pub fn slow_note(kind: BackendKind, bans: i64) -> Option<String> {
    (kind == BackendKind::Iptables && bans > IPTABLES_SLOW_ABOVE).then(|| {
        format!(
            "{bans} bans are {bans} iptables rules: every iptables command reads them all (a ban takes 10 times as long at 100,000); use backend = ipset (or nft), whose bans cost the same at any number"
        )
    })
}

pub fn backend(cfg: &Config) -> Box<dyn Backend> {
    match cfg.backend {
        BackendKind::Iptables => Box::new(Iptables::new(cfg)),
        BackendKind::Ipset => Box::new(Ipset::new(cfg)),
        BackendKind::Nft => Box::new(Nft::new(cfg)),
    }
}

fn ipv6_disabled(net: &IpNet) -> FwError {
    FwError::new(
        ErrorKind::Ipv6Off,
        format!("{net}: IPv6 is disabled (ipv6 = no in the config)"),
    )
}

/// The kind of a failure from what the tool printed (iptables, ipset and nft wording).
pub fn classify(stderr: &str) -> ErrorKind {
    let s = stderr.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    if has(&[
        "permission denied",
        "operation not permitted",
        "you must be root",
    ]) {
        ErrorKind::Permission
    } else if has(&[
        "xtables lock",
        "resource temporarily unavailable",
        "device or resource busy",
    ]) {
        ErrorKind::Busy
    } else if has(&["is full", "hash is full", "maximal number"]) {
        ErrorKind::Full
    } else if has(&[
        "element does not exist",
        "it's not added",
        "does a matching rule exist",
        "is not in set",
    ]) {
        ErrorKind::NotThere
    } else if has(&[
        "no chain/target/match by that name",
        "set with the given name does not exist",
        "no such file or directory",
        "is incompatible, use 'nft'",
    ]) {
        ErrorKind::MissingChain
    } else {
        ErrorKind::Failed
    }
}

/// Runs `cmd args...` (no shell), optionally feeding `stdin`; an error carries the command
/// line, what it printed on stderr, and its kind.
/// The longest a firewall command may take (it holds the loop meanwhile): a restore of
/// 100,000 bans takes about 2 s here; a router may be ten times slower. A command stuck on
/// a lock is killed then, and the audit retries what it was to do.
pub const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A query's answer from a command that fails when the answer is no: an entry or its chain,
/// set or table that is not there is "not held".
fn held(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind, ErrorKind::NotThere | ErrorKind::MissingChain) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn run(cmd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<()> {
    match stdin {
        Some(data) => execute(cmd, args, Some(&mut |w| w.write_all(data)), false),
        None => execute(cmd, args, None, false),
    }
    .map(|_| ())
}

/// As `run`, its input written by `feed` as it goes (a restore of a million, never held
/// whole). A `feed` that fails writes a line no tool takes, so that the tool refuses the
/// batch rather than apply a part of it.
pub fn run_fed(
    cmd: &Path,
    args: &[&str],
    feed: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut failed = None;
    let mut guarded = |w: &mut dyn Write| {
        if let Err(e) = feed(w) {
            let _ = w.write_all(b"\n!! the input could not be read whole: refused\n");
            failed = Some(e);
        }
        Ok(())
    };
    let ran = execute(cmd, args, Some(&mut guarded), false).map(|_| ());
    match failed {
        Some(e) => Err(FwError::new(
            ErrorKind::Failed,
            format!("{}: {e}", exec::shown(cmd, args)),
        )),
        None => ran,
    }
}

/// As `run`, returning what the command printed (a listing).
pub fn output(cmd: &Path, args: &[&str]) -> Result<String> {
    execute(cmd, args, None, true)
}

type Feed<'a> = &'a mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>;

fn execute(cmd: &Path, args: &[&str], stdin: Option<Feed>, capture: bool) -> Result<String> {
    let shown = || exec::shown(cmd, args);
    let mut child = exec::command(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::MissingTool,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Permission,
                _ => ErrorKind::Failed,
            };
            FwError::new(kind, format!("cannot run {}: {e}", shown()))
        })?;
    if let (Some(feed), Some(pipe)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe; its exit status tells why.
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, pipe);
        let _ = feed(&mut w).and_then(|()| w.flush());
    }
    finished(child, &shown())
}

/// Waits for a tool (`TOOL_TIMEOUT` at most, then it is killed): what it printed, or its
/// error classified from what it said.
fn finished(child: std::process::Child, shown: &str) -> Result<String> {
    let out = exec::wait_within(child, TOOL_TIMEOUT)
        .map_err(|e| FwError::new(ErrorKind::Failed, format!("{shown}: {e}")))?
        .ok_or_else(|| {
            FwError::new(
                ErrorKind::Busy,
                format!(
                    "`{shown}` took over {} s and was killed",
                    TOOL_TIMEOUT.as_secs()
                ),
            )
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    Err(FwError::new(
        classify(stderr),
        format!(
            "`{shown}` failed ({}){}{}",
            out.status,
            if stderr.is_empty() { "" } else { ": " },
            stderr
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_messages_are_classified() {
        let cases: &[(&str, ErrorKind)] = &[
            ("iptables: No chain/target/match by that name.", ErrorKind::MissingChain),
            ("iptables-restore: line 2 failed: No chain/target/match by that name.", ErrorKind::MissingChain),
            ("iptables v1.8.9 (nf_tables): chain `nope' in table `filter' is incompatible, use 'nft' tool.", ErrorKind::MissingChain),
            ("Error: No such file or directory\nadd element inet nope v4 { 1.2.3.4 }\n                 ^^^^", ErrorKind::MissingChain),
            ("ipset v7.17: The set with the given name does not exist", ErrorKind::MissingChain),
            ("Error: element does not exist\ndelete element inet tt v4 { 1.2.3.4 }", ErrorKind::NotThere),
            ("ipset v7.17: Element cannot be deleted from the set: it's not added", ErrorKind::NotThere),
            ("iptables: Bad rule (does a matching rule exist in that chain?).", ErrorKind::NotThere),
            ("ipset v7.17: Hash is full, cannot add more elements", ErrorKind::Full),
            ("Another app is currently holding the xtables lock. Perhaps you want to use the -w option?", ErrorKind::Busy),
            ("iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)", ErrorKind::Permission),
            ("Error: syntax error, unexpected junk", ErrorKind::Failed),
        ];
        for (text, kind) in cases {
            assert_eq!(classify(text), *kind, "{text}");
        }
    }

    #[test]
    fn a_missing_tool_is_its_own_kind() {
        let e = run(Path::new("/nonexistent/iptables"), &["-L"], None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingTool, "{e}");
    }
}
