//! One running `ampere --resolve NAME...`: the child that does the blocking lookups, and
//! the loop's side of its pipe (non-blocking, at most `MAX_OUTPUT` bytes in all). Both the
//! trusted names and the AMI host's name are looked up through it.

use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::process::Stdio;
use std::time::Instant;

use super::{MAX_ADDRS, MAX_OUTPUT};
use crate::addr::canonical;
use crate::error::Error;
use crate::sys;

/// A lookup under way: the child, its stdout and what it said so far. Dropping it kills
/// and reaps the child.
pub struct LookupChild {
    child: std::process::Child,
    out: File,
    buf: Vec<u8>,
    total: usize,
    pub deadline: Instant,
}

/// What one read of the pipe gave: the complete lines, and whether the child is done (its
/// end of the pipe closed, or it broke a bound: then `Err`).
pub type Lines = Result<(Vec<String>, bool), Error>;

impl LookupChild {
    pub fn spawn<'a>(
        names: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> io::Result<LookupChild> {
        let mut child = crate::exec::itself()
            .arg("--resolve")
            .args(names)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = File::from(std::os::fd::OwnedFd::from(
            child.stdout.take().expect("stdout is piped"),
        ));
        let lookup = LookupChild {
            child,
            out,
            buf: Vec::new(),
            total: 0,
            deadline,
        };
        sys::set_nonblocking(lookup.out.as_raw_fd())?;
        Ok(lookup)
    }

    pub fn fd(&self) -> RawFd {
        self.out.as_raw_fd()
    }

    /// One read of the pipe (the loop calls it when poll says readable).
    pub fn read(&mut self) -> Lines {
        let mut chunk = [0u8; 4096];
        let (n, eof) = match self.out.read(&mut chunk) {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok((Vec::new(), false))
            }
            Err(e) => return Err(Error::io("reading the lookup", e)),
        };
        self.total += n;
        if self.total > MAX_OUTPUT {
            return Err(Error::Protocol(format!(
                "the lookup said more than {MAX_OUTPUT} bytes"
            )));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        // The complete lines; a partial one waits for the rest.
        let complete = self
            .buf
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let lines = self.buf.drain(..complete).collect::<Vec<u8>>();
        let lines = lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        Ok((lines, eof))
    }
}

impl Drop for LookupChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One line of the child: `NAME ADDR...` or `NAME ! why`, as (name, its answer). The error
/// is the child's own words (its resolver's error, written as text on the pipe): logged as
/// they are, never decided on.
pub fn answer(line: &str) -> (&str, Result<Vec<IpAddr>, String>) {
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let parsed = match rest.strip_prefix("! ") {
        Some(why) => Err(why.to_string()),
        None => rest
            .split(' ')
            .take(MAX_ADDRS)
            .map(|a| {
                a.parse()
                    .map(canonical)
                    .map_err(|_| format!("bad answer `{a}`"))
            })
            .collect(),
    };
    (name, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_a_bad_one_refused() {
        let (n, a) = answer("pbx.example.net 192.0.2.1 ::ffff:192.0.2.2");
        assert_eq!(n, "pbx.example.net");
        assert_eq!(
            a.unwrap(),
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap()
            ]
        );
        assert_eq!(answer("x ! no answer").1, Err("no answer".to_string()));
        assert!(answer("x 192.0.2.1;rm").1.is_err());
    }
}
