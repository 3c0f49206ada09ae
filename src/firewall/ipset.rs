//! Banned addresses in two `hash:net` sets (`<chain>-v4`, `<chain>-v6`); the chain holds one
//! `-m set --match-set` rule per family, so a ban costs a set insert whatever the number of
//! bans. `hash:net` rather than `hash:ip`: it holds hosts and the networks of blocklists.

use std::cell::RefCell;
use std::path::PathBuf;

use ipnet::IpNet;

use super::iptables::Chains;
use super::shell::{Dialect, Shell, ShellError};
use super::{
    held, output, run, run_fed, Backend, Entry, ErrorKind, FwError, Result, SipLimit, Source,
    Started,
};
use crate::addr::is_v6;
use crate::config::Config;

/// Larger scripts go to `ipset restore` at once: while Ampere writes to the shell it does not
/// read the shell's errors, so a script must stay well below what the pipes hold.
const SHELL_MAX_SCRIPT: usize = 16 * 1024;

/// `ipset -` (interactive mode). Its prompts go to stdout, which stdio buffers when it is a
/// pipe, so they cannot acknowledge a command; each batch is followed by `test SET 0.0.0.1`
/// instead, whose answer ("0.0.0.1 is [NOT] in set ...") goes to the unbuffered stderr after
/// any error of the commands before it.
static IPSET_SHELL: Dialect = Dialect {
    name: "ipset -",
    args: &["-"],
    marker: b"0.0.0.1 is ",
    acks_on_stdout: false,
};

/// ipset's largest per-entry timeout (seconds); longer bans are stored without one and
/// removed by Ampere at their expiry.
const MAX_TIMEOUT: u64 = 2_147_483;

pub struct Ipset {
    chains: Chains,
    ipset: PathBuf,
    maxelem: u64,
    /// The running `ipset -`, started at the first ban; dropped (and the next command run
    /// by a plain exec, then a new shell tried) when it fails.
    shell: RefCell<Option<Shell>>,
}

impl Ipset {
    pub fn new(c: &Config) -> Ipset {
        Ipset {
            chains: Chains::new(c, false),
            ipset: c.ipset.clone(),
            maxelem: c.maxelem,
            shell: RefCell::new(None),
        }
    }

    /// Applies ipset commands through the running shell; if there is none and one cannot be
    /// started, or it breaks, through one `ipset restore` exec instead.
    fn apply(&self, script: &str) -> Result<()> {
        if script.len() > SHELL_MAX_SCRIPT {
            return run(&self.ipset, &["restore"], Some(script.as_bytes()));
        }
        let mut shell = self.shell.borrow_mut();
        if shell.is_none() {
            let sentinel = format!("test {} 0.0.0.1\n", self.set_name(false));
            *shell = Shell::spawn(&self.ipset, &IPSET_SHELL, sentinel).ok();
        }
        if let Some(sh) = shell.as_mut() {
            match sh.run(script) {
                Ok(()) => return Ok(()),
                Err(ShellError::Said(msg)) => return Err(FwError::new(super::classify(&msg), msg)),
                Err(ShellError::Broken(msg)) => {
                    crate::warn!("{msg}; running ipset once per command instead");
                    *shell = None;
                }
            }
        }
        run(&self.ipset, &["restore"], Some(script.as_bytes()))
    }

    /// `ipset restore` lines adding `entries` (`-exist`: one held already is refreshed).
    fn add_script(&self, entries: &[Entry], now: i64) -> Result<String> {
        let mut script = String::new();
        for e in entries {
            let fam = self.chains.family_for(&e.net)?;
            script.push_str(&format!(
                "add {} {} timeout {} -exist\n",
                self.set_name(fam.v6),
                e.net,
                Self::timeout(e, now)
            ));
        }
        Ok(script)
    }

    fn set_name(&self, v6: bool) -> String {
        format!("{}-{}", self.chains.chain, if v6 { "v6" } else { "v4" })
    }

    fn create_line(&self, name: &str, v6: bool) -> String {
        format!(
            "create {name} hash:net family {} maxelem {} timeout 0 -exist\n",
            if v6 { "inet6" } else { "inet" },
            self.maxelem
        )
    }

    fn match_rule(&self, v6: bool) -> String {
        format!(
            "-m set --match-set {} src -j {}",
            self.set_name(v6),
            self.chains.target.as_str()
        )
    }

    /// What is wrong with the set's definition (another type, family or `maxelem`, or no
    /// timeouts: a set of the same name made by hand, or a `maxelem` changed in the config);
    /// None when it is Ampere's, or not there (then `create` makes it).
    fn definition_fault(&self, v6: bool) -> Result<Option<String>> {
        let name = self.set_name(v6);
        let text = match output(&self.ipset, &["list", "-t", &name]) {
            Ok(t) => t,
            Err(e) if e.kind == ErrorKind::MissingChain => return Ok(None),
            Err(e) => return Err(e),
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map_or("", str::trim)
        };
        let header: Vec<&str> = field("Header:").split_whitespace().collect();
        Ok(self.judge_definition(v6, field("Type:"), &header))
    }

    /// `definition_fault` from the `create` line of an `ipset save` of the set.
    fn saved_definition_fault(&self, v6: bool, saved: &str) -> Option<String> {
        let mut words = saved
            .lines()
            .find(|l| l.starts_with("create "))
            .unwrap_or("")
            .split_whitespace()
            .skip(2);
        let kind = words.next().unwrap_or("");
        let header: Vec<&str> = words.collect();
        self.judge_definition(v6, kind, &header)
    }

    /// Whether a set of type `kind` with these header words (`family inet hashsize 1024
    /// maxelem 65536 timeout 0 ...`) is the set Ampere makes; what differs if not.
    fn judge_definition(&self, v6: bool, kind: &str, header: &[&str]) -> Option<String> {
        let value = |k: &str| header.windows(2).find(|w| w[0] == k).map(|w| w[1]);
        let family = if v6 { "inet6" } else { "inet" };
        let max = self.maxelem.to_string();
        let ours = kind == "hash:net"
            && value("family") == Some(family)
            && value("maxelem") == Some(max.as_str())
            && value("timeout").is_some();
        (!ours).then(|| {
            format!(
                "ipset: set `{}` is `{kind} {}`, not `hash:net family {family} maxelem {max} timeout`",
                self.set_name(v6),
                header.join(" ")
            )
        })
    }

    /// The members of a set as `ipset save` printed them.
    fn saved_members(name: &str, saved: &str, into: &mut Vec<IpNet>) {
        for line in saved.lines() {
            let mut words = line.split_whitespace();
            if (words.next(), words.next()) == (Some("add"), Some(name)) {
                if let Some(Ok(n)) = words.next().map(crate::addr::parse_net) {
                    into.push(n);
                }
            }
        }
    }

    /// Both sets as one `ipset save` each printed them: their members, and what is wrong
    /// with their definitions. An error if a set or its match rule is missing.
    fn saved_sets(&self) -> Result<(Vec<IpNet>, Vec<String>)> {
        let (mut nets, mut definitions) = (Vec::new(), Vec::new());
        for fam in self.chains.families() {
            let name = self.set_name(fam.v6);
            let saved = output(&self.ipset, &["save", &name])?;
            Self::saved_members(&name, &saved, &mut nets);
            definitions.extend(self.saved_definition_fault(fam.v6, &saved));
        }
        self.check_match_rules()?;
        Ok((nets, definitions))
    }

    /// A set that exists but is not matched is no ban: the match rules must be there too.
    fn check_match_rules(&self) -> Result<()> {
        let rules = self.chains.listed_rules()?;
        for fam in self.chains.families() {
            if !rules.iter().any(|r| *r == self.match_rule(fam.v6)) {
                return Err(FwError::new(
                    super::ErrorKind::MissingChain,
                    format!(
                        "the rule `{}` is missing from chain `{}`",
                        self.match_rule(fam.v6),
                        self.chains.chain
                    ),
                ));
            }
        }
        Ok(())
    }

    fn timeout(e: &Entry, now: i64) -> u64 {
        match e.timeout(now) {
            Some(t) if t <= MAX_TIMEOUT => t.max(1),
            _ => 0,
        }
    }
}

impl Backend for Ipset {
    fn prepare(&self) -> Result<()> {
        self.chains.check()?;
        let mut script = String::new();
        for fam in self.chains.families() {
            script.push_str(&self.create_line(&self.set_name(fam.v6), fam.v6));
        }
        run(&self.ipset, &["restore"], Some(script.as_bytes())).map_err(|e| {
            FwError::new(e.kind, format!(
                "ipset is not usable: {e}\ninstall it (apt-get install ipset, or opkg install ipset) and make sure the kernel has ip_set_hash_net (modprobe ip_set_hash_net)"
            ))
        })?;
        // The match rule, unless the daemon put it there already.
        for fam in self.chains.families() {
            let rule = self.match_rule(fam.v6);
            let args: Vec<&str> = rule.split(' ').collect();
            let mut check = vec!["-w", "-C", &self.chains.chain];
            check.extend(&args);
            if run(&fam.cmd, &check, None).is_err() {
                let mut add = vec!["-w", "-A", &self.chains.chain];
                add.extend(&args);
                run(&fam.cmd, &add, None)?;
            }
        }
        Ok(())
    }

    fn restore(&self, bans: &dyn Source, now: i64) -> Result<()> {
        // A set of Ampere's name but not of its making cannot be swapped with one that is:
        // its match rule out of the chain, then the set destroyed and made again below.
        for fam in self.chains.families() {
            if let Some(fault) = self.definition_fault(fam.v6)? {
                crate::warn!("{fault}: made again");
                self.chains.replace(fam, std::iter::empty())?;
                run(&self.ipset, &["destroy", &self.set_name(fam.v6)], None)?;
            }
        }
        // Fill a fresh set and swap it in: the kernel goes from the old set to the complete
        // new one in one step. Written to `ipset restore` as the bans are read; a read that
        // fails stops before the swap, and the old set stays.
        let mut read_error = None;
        let ran = run_fed(&self.ipset, &["restore"], &mut |w| {
            for fam in self.chains.families() {
                let name = self.set_name(fam.v6);
                let tmp = format!("{name}-n");
                w.write_all(self.create_line(&name, fam.v6).as_bytes())?;
                w.write_all(self.create_line(&tmp, fam.v6).as_bytes())?;
                writeln!(w, "flush {tmp}")?;
                let mut written = Ok(());
                let read = bans.each(&mut |e| {
                    if is_v6(&e.net) == fam.v6 && written.is_ok() {
                        written =
                            writeln!(w, "add {tmp} {} timeout {}", e.net, Self::timeout(&e, now));
                    }
                });
                written?;
                if let Err(e) = read {
                    let text = e.to_string();
                    read_error = Some(e);
                    return Err(std::io::Error::other(text));
                }
                writeln!(w, "swap {tmp} {name}\ndestroy {tmp}")?;
            }
            Ok(())
        });
        ran.map_err(|e| read_error.take().unwrap_or(e))?;
        for fam in self.chains.families() {
            self.chains
                .replace(fam, std::iter::once(self.match_rule(fam.v6)))?;
        }
        Ok(())
    }

    fn ban(&self, e: &Entry, now: i64) -> Result<()> {
        self.ban_many(std::slice::from_ref(e), now)
    }

    fn adds_idempotently(&self) -> bool {
        true
    }

    fn ban_many(&self, entries: &[Entry], now: i64) -> Result<()> {
        self.apply(&self.add_script(entries, now)?)
    }

    fn ban_many_started(&self, entries: &[Entry], now: i64) -> Option<Started> {
        let script = self.add_script(entries, now).ok()?;
        Started::spawn(&self.ipset, &["restore"], script.as_bytes())
    }

    fn limit_sip(&self, limit: Option<&SipLimit>) -> Result<()> {
        self.chains.set_limit(limit)
    }

    fn faults(&self) -> Result<Vec<String>> {
        let mut out = self.chains.faults()?;
        for fam in self.chains.families() {
            out.extend(self.definition_fault(fam.v6)?);
        }
        Ok(out)
    }

    fn path_faults(&self) -> Result<Vec<String>> {
        self.chains.path_faults()
    }

    fn holds(&self, net: &IpNet) -> Result<bool> {
        let fam = self.chains.family_for(net)?;
        let set = self.set_name(fam.v6);
        held(run(&self.ipset, &["test", &set, &net.to_string()], None))
    }

    fn list(&self) -> Result<Vec<IpNet>> {
        Ok(self.saved_sets()?.0)
    }

    fn list_and_faults(&self) -> Result<(Vec<IpNet>, Result<Vec<String>>)> {
        let (nets, definitions) = self.saved_sets()?;
        let faults = self.chains.faults().map(|mut f| {
            f.extend(definitions);
            f
        });
        Ok((nets, faults))
    }

    fn unban_many(&self, nets: &[IpNet]) -> Result<()> {
        let mut script = String::new();
        for n in nets {
            let fam = self.chains.family_for(n)?;
            script.push_str(&format!("del {} {n} -exist\n", self.set_name(fam.v6)));
        }
        self.apply(&script)
    }

    fn unban(&self, net: &IpNet) -> Result<()> {
        let fam = self.chains.family_for(net)?;
        self.apply(&format!("del {} {net} -exist\n", self.set_name(fam.v6)))
    }
}

#[cfg(test)]
mod tests;
