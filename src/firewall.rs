//! Firewall backends. Commands are executed directly with an argument vector (fork + execve
//! through `std::process::Command`, a cleared environment, never a shell), and only ever
//! receive addresses that were parsed into `IpNet` first.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::config::{Config, RuleTarget};

#[derive(Debug)]
pub struct FwError(pub String);

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FwError {}

pub type Result<T> = std::result::Result<T, FwError>;

/// What every backend offers the daemon and the admin commands.
pub trait Backend {
    /// Fails with the exact commands to run when the chain (or set) is missing.
    fn check(&self) -> Result<()>;
    /// Replaces the chain's contents with exactly `bans`, in one batch per address family.
    fn restore(&self, bans: &[IpNet]) -> Result<()>;
    fn ban(&self, net: &IpNet) -> Result<()>;
    fn unban(&self, net: &IpNet) -> Result<()>;
}

struct Family {
    name: &'static str,
    cmd: PathBuf,
    restore: PathBuf,
}

/// One rule per banned address in a user chain of the filter table.
pub struct Iptables {
    v4: Family,
    v6: Option<Family>,
    chain: String,
    target: RuleTarget,
}

impl Iptables {
    pub fn new(c: &Config) -> Iptables {
        Iptables {
            v4: Family {
                name: "iptables",
                cmd: c.iptables.clone(),
                restore: c.iptables_restore.clone(),
            },
            v6: c.ipv6.then(|| Family {
                name: "ip6tables",
                cmd: c.ip6tables.clone(),
                restore: c.ip6tables_restore.clone(),
            }),
            chain: c.chain.clone(),
            target: c.target,
        }
    }

    fn families(&self) -> impl Iterator<Item = &Family> {
        std::iter::once(&self.v4).chain(self.v6.as_ref())
    }

    fn family_for(&self, net: &IpNet) -> Result<&Family> {
        match net {
            IpNet::V4(_) => Ok(&self.v4),
            IpNet::V6(_) => self.v6.as_ref().ok_or_else(|| {
                FwError(format!("{net}: IPv6 is disabled (ipv6 = no in the config)"))
            }),
        }
    }

    fn rule<'a>(&'a self, op: &'a str, net: &'a str) -> [&'a str; 7] {
        ["-w", op, &self.chain, "-s", net, "-j", self.target.as_str()]
    }

    /// The commands that create the chain and send SIP traffic through it (README, "Firewall").
    pub fn setup_commands(&self, fam: &str) -> String {
        let c = &self.chain;
        format!(
            "  {fam} -N {c}\n  {fam} -I INPUT -p udp --dport 5060 -j {c}\n  {fam} -I INPUT -p tcp -m multiport --dports 5060,5061 -j {c}\n"
        )
    }
}

impl Backend for Iptables {
    fn check(&self) -> Result<()> {
        let mut missing = Vec::new();
        for fam in self.families() {
            // `-S CHAIN 1` prints at most one rule, so the check stays cheap with many bans.
            if let Err(e) = run(&fam.cmd, &["-w", "-S", &self.chain, "1"], None) {
                missing.push((fam.name, e));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut msg = String::new();
        for (name, e) in &missing {
            msg.push_str(&format!(
                "chain `{}` not usable with {name}: {e}\n",
                self.chain
            ));
        }
        msg.push_str("create the chain and jump into it, as root:\n");
        for (name, _) in &missing {
            msg.push_str(&self.setup_commands(name));
        }
        Err(FwError(msg.trim_end().to_string()))
    }

    fn restore(&self, bans: &[IpNet]) -> Result<()> {
        for fam in self.families() {
            let v6 = fam.name == "ip6tables";
            // Flush and refill inside one restore transaction: the chain is never seen empty
            // or half-filled, and a failure leaves it as it was.
            let mut input = format!("*filter\n-F {}\n", self.chain);
            for net in bans.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6) {
                input.push_str(&format!(
                    "-A {} -s {net} -j {}\n",
                    self.chain,
                    self.target.as_str()
                ));
            }
            input.push_str("COMMIT\n");
            run(&fam.restore, &["-w", "--noflush"], Some(input.as_bytes()))?;
        }
        if self.v6.is_none() {
            let skipped = bans.iter().filter(|n| matches!(n, IpNet::V6(_))).count();
            if skipped > 0 {
                crate::warn!("{skipped} stored IPv6 ban(s) not applied: ipv6 = no");
            }
        }
        Ok(())
    }

    fn ban(&self, net: &IpNet) -> Result<()> {
        let fam = self.family_for(net)?;
        let s = net.to_string();
        run(&fam.cmd, &self.rule("-I", &s), None)
    }

    fn unban(&self, net: &IpNet) -> Result<()> {
        let fam = self.family_for(net)?;
        let s = net.to_string();
        run(&fam.cmd, &self.rule("-D", &s), None)
    }
}

/// Runs `cmd args...` (no shell), optionally feeding `stdin`; an error carries the command
/// line and what it printed on stderr.
pub fn run(cmd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<()> {
    let shown = || format!("{} {}", cmd.display(), args.join(" "));
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
