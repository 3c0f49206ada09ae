//! One rule per banned address in a user chain of the filter table (iptables/ip6tables).

use std::cell::RefCell;
use std::path::PathBuf;

use ipnet::IpNet;

use super::{
    held, ipv6_disabled, output, run, Backend, Entry, ErrorKind, FwError, Result, SipLimit, Source,
};
use crate::addr::is_v6;
use crate::config::{Config, RuleTarget};

pub(super) struct Family {
    pub name: &'static str,
    pub cmd: PathBuf,
    pub restore: PathBuf,
    pub v6: bool,
}

/// The chain and the tools for each enabled family; shared with the ipset backend, whose
/// match rules live in the same chain.
pub(super) struct Chains {
    pub v4: Family,
    pub v6: Option<Family>,
    pub chain: String,
    pub target: RuleTarget,
    /// The SIP limit's rules now at the top of the chain, to take them down again and to
    /// keep them when the chain is rewritten.
    limit: RefCell<Option<SipLimit>>,
    /// The tail of the per-ban rules the chain may hold (`-j DROP`); None for ipset, whose
    /// chain holds no rule per ban.
    ban_tail: Option<String>,
    /// Per family (IPv4, IPv6), the chain's other rules (the limit's, ipset's match rule) as
    /// `-S` printed them right after Ampere wrote them: what the audit compares with, in
    /// the tool's own wording whatever its version.
    shape: RefCell<[Option<Vec<String>>; 2]>,
}

impl Chains {
    /// `bans_in_chain`: one rule per ban in the chain (the iptables backend).
    pub fn new(c: &Config, bans_in_chain: bool) -> Chains {
        Chains {
            v4: Family {
                name: "iptables",
                cmd: c.iptables.clone(),
                restore: c.iptables_restore.clone(),
                v6: false,
            },
            v6: c.ipv6.then(|| Family {
                name: "ip6tables",
                cmd: c.ip6tables.clone(),
                restore: c.ip6tables_restore.clone(),
                v6: true,
            }),
            chain: c.chain.clone(),
            target: c.target,
            limit: RefCell::new(None),
            ban_tail: bans_in_chain.then(|| format!("-j {}", c.target.as_str())),
            shape: RefCell::new([None, None]),
        }
    }

    /// The chain's rules that are not bans, in order.
    fn skeleton(&self, fam: &Family) -> Result<Vec<String>> {
        let mut rules = self.rules_of(fam)?;
        if let Some(tail) = &self.ban_tail {
            rules.retain(|r| ban_rule(r, tail).is_none());
        }
        Ok(rules)
    }

    /// Notes the family's skeleton as Ampere just wrote it.
    fn remember(&self, fam: &Family) {
        // A listing that fails keeps the last one, and so does one with more rules than
        // Ampere writes (the SIP limit's, and ipset's match rule): someone's rule inserted
        // between the write and the listing would be hidden for good (see nft.rs).
        let limit = self
            .limit
            .borrow()
            .as_ref()
            .map_or(0, |l| l.iptables_rules(fam.v6).len());
        let own = limit + usize::from(self.ban_tail.is_none());
        if let Some(skeleton) = self.skeleton(fam).ok().filter(|s| s.len() <= own) {
            self.shape.borrow_mut()[usize::from(fam.v6)] = Some(skeleton);
        }
    }

    /// How the chain differs from what Ampere wrote last (a stray rule inserted, one of its
    /// rules deleted or moved, the chain flushed); empty when it is as written.
    pub fn faults(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for fam in self.families() {
            let Some(want) = self.shape.borrow()[usize::from(fam.v6)].clone() else {
                continue;
            };
            let have = self.skeleton(fam)?;
            if have != want {
                out.push(format!(
                    "{}: chain `{}`: {}",
                    fam.name,
                    self.chain,
                    describe_change(&want, &have, |r| format!("-A {} {r}", self.chain))
                ));
            }
        }
        Ok(out)
    }

    /// The admin's side of the path into the chain, per family (`path.rs`).
    pub fn path_faults(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for fam in self.families() {
            let mut list = |name: &str| -> Result<Option<Vec<String>>> {
                let head = format!("-A {name} ");
                match output(&fam.cmd, &["-w", "-S", name]) {
                    Ok(text) => Ok(Some(
                        text.lines()
                            .filter_map(|l| l.strip_prefix(&head))
                            .map(String::from)
                            .collect(),
                    )),
                    Err(e) if e.kind == ErrorKind::MissingChain => Ok(None),
                    Err(e) => Err(e),
                }
            };
            out.extend(super::path::faults(&self.chain, fam.name, &mut list)?);
        }
        Ok(out)
    }

    /// Puts the limit's rules at the top of the chain, or takes the ones it put there away.
    pub fn set_limit(&self, limit: Option<&SipLimit>) -> Result<()> {
        let old = self.limit.borrow_mut().take();
        let mut result = Ok(());
        for fam in self.families() {
            if let Some(old) = &old {
                let rules = old.iptables_rules(fam.v6);
                let all: String = rules
                    .iter()
                    .map(|r| format!("-D {} {r}\n", self.chain))
                    .collect();
                if self.commit(fam, &all).is_err() {
                    // Some are gone already (the chain was flushed): the rest one by one.
                    for r in &rules {
                        let _ = self.commit(fam, &format!("-D {} {r}\n", self.chain));
                    }
                }
            }
            if let Some(new) = limit {
                let add: String = new
                    .iptables_rules(fam.v6)
                    .iter()
                    .rev()
                    .map(|r| format!("-I {} 1 {r}\n", self.chain))
                    .collect();
                if let Err(e) = self.commit(fam, &add) {
                    result = Err(e);
                }
            }
        }
        if result.is_ok() {
            *self.limit.borrow_mut() = limit.cloned();
        }
        for fam in self.families() {
            self.remember(fam);
        }
        result
    }

    pub fn families(&self) -> impl Iterator<Item = &Family> {
        std::iter::once(&self.v4).chain(self.v6.as_ref())
    }

    pub fn family_for(&self, net: &IpNet) -> Result<&Family> {
        match net {
            IpNet::V4(_) => Ok(&self.v4),
            IpNet::V6(_) => self.v6.as_ref().ok_or_else(|| ipv6_disabled(net)),
        }
    }

    /// The commands that create the chain and send SIP and IAX2 traffic through it
    /// (README, "The firewall chain").
    fn setup_commands(&self, fam: &str) -> String {
        let c = &self.chain;
        format!(
            "  {fam} -N {c}\n  {fam} -I INPUT -p udp -m multiport --dports 5060,4569 -j {c}\n  {fam} -I INPUT -p tcp -m multiport --dports 5060,5061 -j {c}\n"
        )
    }

    /// The rules of one family's chain as `iptables -S` prints them, after `-A CHAIN `.
    fn rules_of(&self, fam: &Family) -> Result<Vec<String>> {
        let head = format!("-A {} ", self.chain);
        let text = output(&fam.cmd, &["-w", "-S", &self.chain])?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix(&head))
            .map(String::from)
            .collect())
    }

    /// Every rule of the chain after `-A CHAIN `, all families.
    pub fn listed_rules(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for fam in self.families() {
            out.extend(self.rules_of(fam)?);
        }
        Ok(out)
    }

    /// The networks of the rules `-A CHAIN -s NET <tail>` in the chain, all families.
    pub fn listed(&self, tail: &str) -> Result<Vec<IpNet>> {
        Ok(self
            .listed_rules()?
            .iter()
            .filter_map(|rule| ban_rule(rule, tail))
            .collect())
    }

    /// Rewrites each family's chain as it is minus the rules `-s NET <tail>` for `nets`, in one
    /// restore transaction: every other rule (a SIP limit, a set's match rule) stays, in
    /// its order.
    pub fn rebuild_without(&self, nets: &[IpNet], tail: &str) -> Result<()> {
        let drop: std::collections::HashSet<&IpNet> = nets.iter().collect();
        for fam in self.families() {
            let mut body = format!("-F {}\n", self.chain);
            for rule in self.rules_of(fam)? {
                if !ban_rule(&rule, tail).is_some_and(|n| drop.contains(&n)) {
                    body.push_str(&format!("-A {} {rule}\n", self.chain));
                }
            }
            self.commit(fam, &body)?;
        }
        Ok(())
    }

    /// Fails with the set-up commands when a chain is missing.
    pub fn check(&self) -> Result<()> {
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
        Err(FwError::new(ErrorKind::MissingChain, msg.trim_end()))
    }

    /// Flushes the chain and refills it with `rules` (each the part after `-A CHAIN `) in one
    /// restore transaction: the chain is never seen empty or half-filled, and a failure leaves
    /// it as it was.
    pub fn replace(&self, fam: &Family, rules: impl Iterator<Item = String>) -> Result<()> {
        // The SIP limit in place stays, at the top.
        let limit = self
            .limit
            .borrow()
            .as_ref()
            .map(|l| l.iptables_rules(fam.v6));
        let mut body = format!("-F {}\n", self.chain);
        for r in limit.into_iter().flatten().chain(rules) {
            body.push_str(&format!("-A {} {r}\n", self.chain));
        }
        self.commit(fam, &body)?;
        self.remember(fam);
        Ok(())
    }

    /// Applies `body` (rule commands for the filter table) in one restore transaction,
    /// leaving every other chain alone.
    pub fn commit(&self, fam: &Family, body: &str) -> Result<()> {
        let input = format!("*filter\n{body}COMMIT\n");
        run(&fam.restore, &["-w", "--noflush"], Some(input.as_bytes()))
    }
}

/// The network of a ban rule as `iptables -S` prints it after `-A CHAIN `: `-s NET` and then
/// `tail` (`-j DROP`), or `tail` with the target's options (`-j REJECT --reject-with …`).
fn ban_rule(rule: &str, tail: &str) -> Option<IpNet> {
    let (net, rest) = rule.strip_prefix("-s ")?.split_once(' ')?;
    let rest = rest.strip_prefix(tail)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    crate::addr::parse_net(net).ok()
}

/// What changed from `want` to `have` (rules or lines), for a log line: the first rule that
/// is new, else the first one gone, else the order.
pub(super) fn describe_change(
    want: &[String],
    have: &[String],
    show: impl Fn(&str) -> String,
) -> String {
    if let Some(new) = have.iter().find(|r| !want.contains(r)) {
        return format!("`{}` is not Ampere's", show(new));
    }
    if let Some(gone) = want.iter().find(|r| !have.contains(r)) {
        return format!("`{}` is gone", show(gone));
    }
    "its rules are out of order".to_string()
}

/// Deleting more rules than this at once rebuilds the chain instead: each `-D` searches the
/// chain, so 20,000 of them in one restore took 97 s, a rebuild a fraction of a second.
const REBUILD_ABOVE: usize = 64;

pub struct Iptables {
    chains: Chains,
}

impl Iptables {
    pub fn new(c: &Config) -> Iptables {
        Iptables {
            chains: Chains::new(c, true),
        }
    }

    fn rule<'a>(&'a self, op: &'a str, net: &'a str) -> [&'a str; 7] {
        let c = &self.chains;
        ["-w", op, &c.chain, "-s", net, "-j", c.target.as_str()]
    }
}

impl Backend for Iptables {
    fn prepare(&self) -> Result<()> {
        self.chains.check()
    }

    fn restore(&self, bans: &dyn Source, _now: i64) -> Result<()> {
        // A rule per ban: iptables is not for a million (doc/backends.md), so the rules of
        // a family are gathered before its one `iptables-restore`.
        let c = &self.chains;
        for fam in c.families() {
            let mut rules = Vec::new();
            bans.each(&mut |e| {
                if is_v6(&e.net) == fam.v6 {
                    rules.push(format!("-s {} -j {}", e.net, c.target.as_str()));
                }
            })?;
            c.replace(fam, rules.into_iter())?;
        }
        Ok(())
    }

    fn ban(&self, e: &Entry, _now: i64) -> Result<()> {
        let fam = self.chains.family_for(&e.net)?;
        let s = e.net.to_string();
        run(&fam.cmd, &self.rule("-I", &s), None)
    }

    fn ban_many(&self, entries: &[Entry], now: i64) -> Result<()> {
        if let [e] = entries {
            // A bare `iptables -I` is cheaper than a restore for one rule.
            return self.ban(e, now);
        }
        let c = &self.chains;
        for e in entries {
            c.family_for(&e.net)?;
        }
        for fam in c.families() {
            let body: String = entries
                .iter()
                .filter(|e| is_v6(&e.net) == fam.v6)
                .map(|e| format!("-I {} -s {} -j {}\n", c.chain, e.net, c.target.as_str()))
                .collect();
            if !body.is_empty() {
                c.commit(fam, &body)?;
            }
        }
        Ok(())
    }

    fn limit_sip(&self, limit: Option<&SipLimit>) -> Result<()> {
        self.chains.set_limit(limit)
    }

    fn faults(&self) -> Result<Vec<String>> {
        self.chains.faults()
    }

    fn path_faults(&self) -> Result<Vec<String>> {
        self.chains.path_faults()
    }

    fn holds(&self, net: &IpNet) -> Result<bool> {
        let fam = self.chains.family_for(net)?;
        held(run(&fam.cmd, &self.rule("-C", &net.to_string()), None))
    }

    fn unban_many(&self, nets: &[IpNet]) -> Result<()> {
        let c = &self.chains;
        for n in nets {
            c.family_for(n)?;
        }
        if nets.len() > REBUILD_ABOVE {
            return c.rebuild_without(nets, &format!("-j {}", c.target.as_str()));
        }
        for fam in c.families() {
            let body: String = nets
                .iter()
                .filter(|n| is_v6(n) == fam.v6)
                .map(|n| format!("-D {} -s {n} -j {}\n", c.chain, c.target.as_str()))
                .collect();
            if !body.is_empty() {
                c.commit(fam, &body)?;
            }
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<IpNet>> {
        self.chains
            .listed(&format!("-j {}", self.chains.target.as_str()))
    }

    fn ensure(&self, e: &Entry, now: i64) -> Result<()> {
        let fam = self.chains.family_for(&e.net)?;
        let s = e.net.to_string();
        // `-I` of a rule that is there makes a second copy: look first.
        if run(&fam.cmd, &self.rule("-C", &s), None).is_ok() {
            return Ok(());
        }
        self.ban(e, now)
    }

    fn unban(&self, net: &IpNet) -> Result<()> {
        let fam = self.chains.family_for(net)?;
        let s = net.to_string();
        // Delete only if present (`-C`), so that an unban of a rule that is gone succeeds.
        if run(&fam.cmd, &self.rule("-C", &s), None).is_err() {
            return Ok(());
        }
        run(&fam.cmd, &self.rule("-D", &s), None)
    }
}

#[cfg(test)]
mod tests {
    use super::ban_rule;

    #[test]
    fn ban_rules_are_read_as_iptables_prints_them() {
        let n = |s: &str| Some(crate::addr::parse_net(s).unwrap());
        assert_eq!(
            ban_rule("-s 192.0.2.1/32 -j DROP", "-j DROP"),
            n("192.0.2.1")
        );
        assert_eq!(
            ban_rule(
                "-s 2001:db8::/48 -j REJECT --reject-with icmp6-port-unreachable",
                "-j REJECT"
            ),
            n("2001:db8::/48")
        );
        assert_eq!(ban_rule("-s 127.0.0.0/8 -j RETURN", "-j DROP"), None);
        assert_eq!(ban_rule("-s 192.0.2.1/32 -j DROPPED", "-j DROP"), None);
        assert_eq!(
            ban_rule("-m set --match-set ampere-v4 src -j DROP", "-j DROP"),
            None
        );
        assert_eq!(
            ban_rule("-m hashlimit --hashlimit-above 10/sec -j DROP", "-j DROP"),
            None
        );
        // The SIP limit's rule for IPv6 LAN sources is no ban of the LAN.
        assert_eq!(
            ban_rule(
                "-s fc00::/7 -m hashlimit --hashlimit-above 10/sec --hashlimit-name ampere-bl-0001 -j DROP",
                "-j DROP"
            ),
            None
        );
    }
}
