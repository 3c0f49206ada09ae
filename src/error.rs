//! Ampere's errors as they travel up to `main`, which alone turns them into text and an exit
//! code. Each keeps what a caller may need to decide on: the store's and the firewall's kind
//! (busy: try again; full; gone), the config's file and line, the OS's error of a file or a
//! socket. `Invalid` is the one error of input that does not parse: its caller knows where
//! the input was (a file and line, a byte offset, a list's line) and adds it.

use std::fmt;
use std::io;

use crate::config::ConfigError;
use crate::firewall::FwError;
use crate::store::StoreError;

/// Input refused, and why: a config value, an address, a field of a CrowdSec decision, a
/// byte of JSON, a word of the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Invalid {
        Invalid(s.to_string())
    }
}

impl std::error::Error for Invalid {}

#[derive(Debug)]
pub enum Error {
    Config(ConfigError),
    Store(StoreError),
    Firewall(FwError),
    /// A file, a socket, a pipe, a child: what it was, and the OS's error.
    Io {
        what: String,
        err: io::Error,
    },
    Invalid(Invalid),
    /// The running daemon answered with this error.
    Daemon(String),
    /// Another Ampere answers at the control socket (its path): two daemons would fight
    /// over the firewall.
    Running(String),
    /// A peer (an HTTP server, the daemon) broke its protocol or its bounds.
    Protocol(String),
}

impl Error {
    /// A file, a socket or a pipe and what went wrong with it.
    pub fn io(what: impl fmt::Display, err: io::Error) -> Error {
        Error::Io {
            what: what.to_string(),
            err,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Store(e) => e.fmt(f),
            Error::Firewall(e) => e.fmt(f),
            Error::Io { what, err } => write!(f, "{what}: {err}"),
            Error::Invalid(e) => e.fmt(f),
            Error::Daemon(e) => write!(f, "the running daemon: {e}"),
            Error::Running(path) => write!(
                f,
                "{path}: another Ampere is running and answers there (stop it first, or set `socket` to another path)"
            ),
            Error::Protocol(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(e)
    }
}

impl From<FwError> for Error {
    fn from(e: FwError) -> Error {
        Error::Firewall(e)
    }
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Error {
        Error::Invalid(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
