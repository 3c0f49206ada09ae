//! Firewall backends. Commands are executed directly with an argument vector (fork + execve
//! through `std::process::Command`, a cleared environment, never a shell), and only ever
//! receive addresses that were parsed into `IpNet` first.

mod ipset;
mod iptables;
mod nft;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::config::{BackendKind, Config};

pub use ipset::Ipset;
pub use iptables::Iptables;
pub use nft::Nft;

#[derive(Debug)]
pub struct FwError(pub String);

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FwError {}

pub type Result<T> = std::result::Result<T, FwError>;

/// A ban as the firewall sees it: the network and the seconds it has left (None =
/// permanent). Backends with native timeouts (ipset, nft) let the kernel expire it even
/// while Ampere is not running; Ampere removes it at its expiry in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub net: IpNet,
    pub timeout: Option<u64>,
}

/// What every backend offers the daemon and the admin commands.
pub trait Backend {
    /// Verifies the pieces the admin must provide (a chain, the tools, kernel support) and
    /// creates what the backend owns (sets, its nft table) when missing, without touching
    /// bans that are already there. Fails with the commands to run.
    fn prepare(&self) -> Result<()>;
    /// Replaces every ban with exactly `bans`, in one batch per tool.
    fn restore(&self, bans: &[Entry]) -> Result<()>;
    fn ban(&self, entry: &Entry) -> Result<()>;
    /// Several bans with one command per tool, so that a burst of bans costs one exec and
    /// does not stall the AMI reader. All or nothing where the tool allows (restore files).
    fn ban_many(&self, entries: &[Entry]) -> Result<()> {
        entries.iter().try_for_each(|e| self.ban(e))
    }
    /// Removing a ban that is not there (already expired in the kernel) is not an error.
    fn unban(&self, net: &IpNet) -> Result<()>;
}

pub fn backend(cfg: &Config) -> Box<dyn Backend> {
    match cfg.backend {
        BackendKind::Iptables => Box::new(Iptables::new(cfg)),
        BackendKind::Ipset => Box::new(Ipset::new(cfg)),
        BackendKind::Nft => Box::new(Nft::new(cfg)),
    }
}

fn ipv6_disabled(net: &IpNet) -> FwError {
    FwError(format!("{net}: IPv6 is disabled (ipv6 = no in the config)"))
}

/// Runs `cmd args...` (no shell), optionally feeding `stdin`; an error carries the command
/// line and what it printed on stderr.
pub fn run(cmd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<()> {
    let shown = || {
        let mut s = format!("{} {}", cmd.display(), args.join(" "));
        if s.len() > 200 {
            s.truncate(200);
            s.push('…');
        }
        s
    };
    let mut child = Command::new(cmd)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FwError(format!("cannot run {}: {e}", shown())))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe; its exit status tells why.
        let _ = pipe.write_all(data);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| FwError(format!("{}: {e}", shown())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    Err(FwError(format!(
        "`{}` failed ({}){}{}",
        shown(),
        out.status,
        if stderr.is_empty() { "" } else { ": " },
        stderr
    )))
}
