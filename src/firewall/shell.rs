//! A firewall tool kept running behind a pipe (`ipset -`, `nft -i`), so that a ban costs
//! a netlink round trip (about 0.1 ms) instead of a fork and exec (about 1 ms). Each batch
//! of commands is followed by a sentinel command whose answer acknowledges the batch: the
//! tool reads its input in order, so when the sentinel's answer comes, every command before
//! it has been applied or refused, and a refusal has been written already.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{self, PollFd};

/// How long one batch may take before the tool counts as hung.
const TIMEOUT: Duration = Duration::from_secs(5);

pub enum ShellError {
    /// The tool ran the commands and refused some with this; it is fine.
    Said(String),
    /// The tool is gone or stuck.
    Broken(String),
}

/// How a tool acknowledges and where it says what it refused.
pub struct Dialect {
    /// Its name in messages (`ipset -`).
    pub name: &'static str,
    /// The arguments that start it reading commands from its input.
    pub args: &'static [&'static str],
    /// Bytes that begin the sentinel's answer (the rest of its line follows).
    pub marker: &'static [u8],
    /// Errors come on stderr and acknowledgements on stdout (nft), or both on stderr,
    /// the errors before the acknowledgement (ipset, whose stdout stdio buffers).
    pub acks_on_stdout: bool,
}

pub struct Shell {
    child: Child,
    stdin: ChildStdin,
    acks: std::fs::File,
    /// Where refusals come when not on `acks` (non-blocking: drained after each ack).
    errors: Option<std::fs::File>,
    sentinel: String,
    dialect: &'static Dialect,
}

impl Shell {
    pub fn spawn(
        tool: &Path,
        dialect: &'static Dialect,
        sentinel: String,
    ) -> std::io::Result<Shell> {
        let mut child = crate::exec::command(tool)
            .args(dialect.args)
            .stdin(Stdio::piped())
            .stdout(if dialect.acks_on_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stderr = std::fs::File::from(OwnedFd::from(child.stderr.take().expect("piped")));
        let (acks, errors) = match child.stdout.take() {
            Some(out) => {
                sys::set_nonblocking(stderr.as_raw_fd())?;
                (std::fs::File::from(OwnedFd::from(out)), Some(stderr))
            }
            None => (stderr, None),
        };
        Ok(Shell {
            child,
            stdin,
            acks,
            errors,
            sentinel,
            dialect,
        })
    }

    /// Runs `script` (the tool's commands, one per line) and waits for its acknowledgement.
    pub fn run(&mut self, script: &str) -> Result<(), ShellError> {
        let name = self.dialect.name;
        let broken = |e: &dyn std::fmt::Display| ShellError::Broken(format!("{name}: {e}"));
        let mut input = String::with_capacity(script.len() + self.sentinel.len());
        input.push_str(script);
        input.push_str(&self.sentinel);
        if let Err(e) = self.stdin.write_all(input.as_bytes()) {
            // Gone before reading: what it said on its way out is the reason.
            let said = self.drain_errors();
            return Err(broken(&with_said(&e.to_string(), &said)));
        }
        let marker = self.dialect.marker;
        let mut said = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        let at = loop {
            let ack = said.windows(marker.len()).position(|w| w == marker);
            if let Some(at) = ack.filter(|&at| said[at..].contains(&b'\n')) {
                break at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(broken(&format_args!(
                    "no answer within {}s",
                    TIMEOUT.as_secs()
                )));
            }
            let mut fds = [PollFd {
                fd: self.acks.as_raw_fd(),
                events: sys::POLLIN,
                revents: 0,
            }];
            match sys::poll(&mut fds, left.as_millis().max(1) as i32) {
                Ok(0) => continue,
                Ok(_) => {}
                // A signal (SIGHUP, SIGUSR1) is no reason to give up on the tool.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(broken(&e)),
            }
            let mut buf = [0u8; 4096];
            match self.acks.read(&mut buf) {
                Ok(0) => {
                    let said = self.drain_errors();
                    return Err(broken(&with_said("exited", &said)));
                }
                Ok(n) => said.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(broken(&e)),
            }
        };
        let refused = match self.errors {
            // Written before the acknowledgement, so all there now.
            Some(_) => self.drain_errors(),
            None => said[..at].to_vec(),
        };
        let text = String::from_utf8_lossy(&refused).trim().to_string();
        if text.is_empty() {
            Ok(())
        } else {
            Err(ShellError::Said(text))
        }
    }
}

impl Shell {
    /// What the error stream holds now (non-blocking; at most what its pipe holds).
    fn drain_errors(&mut self) -> Vec<u8> {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        if let Some(errors) = &mut self.errors {
            while let Ok(n @ 1..) = errors.read(&mut buf) {
                text.extend_from_slice(&buf[..n]);
            }
        }
        text
    }
}

/// `what`, and what the tool said on its way out, if anything.
fn with_said(what: &str, said: &[u8]) -> String {
    let said = String::from_utf8_lossy(said);
    match said.trim() {
        "" => what.to_string(),
        s => format!("{what}: {s}"),
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
