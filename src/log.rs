//! Where log lines go: stderr (the default, for SysV/procd/systemd capture), an appended file
//! (`-o` or `log = /path`, reopened on SIGHUP for logrotate), or syslog (facility daemon,
//! ident `ampere`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::Error;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stderr,
    File(PathBuf),
    Syslog,
}

impl Target {
    /// `log = syslog`, `log = stderr` (or `-`), otherwise a file path.
    pub fn parse(s: &str) -> Target {
        match s {
            "syslog" => Target::Syslog,
            "stderr" | "-" | "" => Target::Stderr,
            path => Target::File(PathBuf::from(path)),
        }
    }
}

enum Sink {
    Stderr,
    File(File),
    Syslog(syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>),
}

struct Logger {
    target: Target,
    sink: Sink,
    max: Level,
}

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

fn default_level() -> Level {
    if cfg!(feature = "debug-log") {
        Level::Debug
    } else {
        Level::Info
    }
}

fn open_sink(target: &Target) -> Result<Sink, Error> {
    match target {
        Target::Stderr => Ok(Sink::Stderr),
        Target::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Sink::File)
            .map_err(|e| Error::io(format_args!("cannot open log file {}", path.display()), e)),
        Target::Syslog => {
            let fmt = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: "ampere".into(),
                pid: std::process::id(),
            };
            syslog::unix(fmt).map(Sink::Syslog).map_err(|e| Error::Io {
                what: "cannot connect to syslog".into(),
                err: std::io::Error::other(e.to_string()),
            })
        }
    }
}

/// Sends log lines to `target` from now on. On failure the previous destination stays.
pub fn init(target: &Target) -> Result<(), Error> {
    let sink = open_sink(target)?;
    let mut guard = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    let max = guard.as_ref().map_or_else(default_level, |l| l.max);
    *guard = Some(Logger {
        target: target.clone(),
        sink,
        max,
    });
    Ok(())
}

/// Reopens the current destination (after logrotate moved the file away).
pub fn reopen() -> Result<(), Error> {
    let target = {
        let guard = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(l) => l.target.clone(),
            None => return Ok(()),
        }
    };
    init(&target)
}

pub fn set_level(max: Level) {
    let mut guard = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_mut() {
        Some(l) => l.max = max,
        None => {
            *guard = Some(Logger {
                target: Target::Stderr,
                sink: Sink::Stderr,
                max,
            })
        }
    }
}

pub fn enabled(level: Level) -> bool {
    let guard = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    level <= guard.as_ref().map_or_else(default_level, |l| l.max)
}

pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut guard = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    let max = guard.as_ref().map_or_else(default_level, |l| l.max);
    if level > max {
        return;
    }
    match guard.as_mut().map(|l| &mut l.sink) {
        // One write call per line: stderr is unbuffered, and a line written in pieces cost
        // eight system calls (and interleaves with another process's lines).
        None | Some(Sink::Stderr) => {
            let line = format!("{} {}: {}\n", stamp(), level.tag(), args);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        Some(Sink::File(f)) => {
            // Also so that concurrent writers (daemon and `ampere -a`) never interleave
            // within a line of an O_APPEND file.
            let line = format!("{} {}: {}\n", stamp(), level.tag(), args);
            let _ = f.write_all(line.as_bytes());
        }
        Some(Sink::Syslog(s)) => {
            let msg = args.to_string();
            let _ = match level {
                Level::Error => s.err(msg),
                Level::Warn => s.warning(msg),
                Level::Info => s.info(msg),
                Level::Debug => s.debug(msg),
            };
        }
    }
}

fn stamp() -> String {
    let t = crate::sys::local_time(crate::clock::now_epoch());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.min, t.sec
    )
}

/// Renders attacker-controlled bytes (AccountID, SessionID, ...) for a log line or a
/// terminal: printable ASCII stays, everything else is escaped, and the result is bounded.
pub fn printable(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let mut out = String::with_capacity(bytes.len().min(MAX));
    for (i, &b) in bytes.iter().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_controls_and_bounds_length() {
        assert_eq!(printable(b"1001"), "1001");
        assert_eq!(printable(b"a\x1b[2Jb\n\0"), "a\\x1b[2Jb\\x0a\\x00");
        assert_eq!(printable(&[0xff, b'\\']), "\\xff\\\\");
        let long = vec![b'x'; 500];
        assert_eq!(printable(&long).chars().count(), 81);
    }

    #[test]
    fn target_parse() {
        assert_eq!(Target::parse("syslog"), Target::Syslog);
        assert_eq!(Target::parse("-"), Target::Stderr);
        assert_eq!(
            Target::parse("/var/log/ampere.log"),
            Target::File("/var/log/ampere.log".into())
        );
    }
}
