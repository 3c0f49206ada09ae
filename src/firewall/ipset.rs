//! Banned addresses in two `hash:net` sets (`<chain>-v4`, `<chain>-v6`); the chain holds one
//! `-m set --match-set` rule per family, so a ban costs a set insert whatever the number of
//! bans. `hash:net` rather than `hash:ip`: it holds hosts and the networks of blocklists.

use std::path::PathBuf;

use ipnet::IpNet;

use super::iptables::Chains;
use super::{run, Backend, Entry, FwError, Result};
use crate::config::Config;

/// ipset's largest per-entry timeout (seconds); longer bans are stored without one and
/// removed by Ampere at their expiry.
const MAX_TIMEOUT: u64 = 2_147_483;

pub struct Ipset {
    chains: Chains,
    ipset: PathBuf,
    maxelem: u64,
}

impl Ipset {
    pub fn new(c: &Config) -> Ipset {
        Ipset {
            chains: Chains::new(c),
            ipset: c.ipset.clone(),
            maxelem: c.maxelem,
        }
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

    fn timeout(e: &Entry) -> u64 {
        match e.timeout {
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
            FwError(format!(
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

    fn restore(&self, bans: &[Entry]) -> Result<()> {
        // Fill a fresh set and swap it in: the kernel goes from the old set to the complete
        // new one in one step.
        let mut script = String::new();
        for fam in self.chains.families() {
            let name = self.set_name(fam.v6);
            let tmp = format!("{name}-n");
            script.push_str(&self.create_line(&name, fam.v6));
            script.push_str(&self.create_line(&tmp, fam.v6));
            script.push_str(&format!("flush {tmp}\n"));
            for e in bans
                .iter()
                .filter(|e| matches!(e.net, IpNet::V6(_)) == fam.v6)
            {
                script.push_str(&format!(
                    "add {tmp} {} timeout {}\n",
                    e.net,
                    Self::timeout(e)
                ));
            }
            script.push_str(&format!("swap {tmp} {name}\ndestroy {tmp}\n"));
        }
        run(&self.ipset, &["restore"], Some(script.as_bytes()))?;
        for fam in self.chains.families() {
            self.chains
                .replace(fam, std::iter::once(self.match_rule(fam.v6)))?;
        }
        Ok(())
    }

    fn ban(&self, e: &Entry) -> Result<()> {
        let fam = self.chains.family_for(&e.net)?;
        let (name, net, t) = (
            self.set_name(fam.v6),
            e.net.to_string(),
            Self::timeout(e).to_string(),
        );
        run(
            &self.ipset,
            &["-exist", "add", &name, &net, "timeout", &t],
            None,
        )
    }

    fn ban_many(&self, entries: &[Entry]) -> Result<()> {
        if let [e] = entries {
            return self.ban(e);
        }
        let mut script = String::new();
        for e in entries {
            let fam = self.chains.family_for(&e.net)?;
            script.push_str(&format!(
                "add {} {} timeout {} -exist\n",
                self.set_name(fam.v6),
                e.net,
                Self::timeout(e)
            ));
        }
        run(&self.ipset, &["restore"], Some(script.as_bytes()))
    }

    fn unban(&self, net: &IpNet) -> Result<()> {
        let fam = self.chains.family_for(net)?;
        let (name, net) = (self.set_name(fam.v6), net.to_string());
        run(&self.ipset, &["-exist", "del", &name, &net], None)
    }
}
