//! The audit: the kernel compared with the database and repaired both ways.

use std::time::Instant;

use ipnet::IpNet;

use super::{Ban, Bans, RETRY_FIRST};
use crate::addr::net_text;
use crate::config::Config;
use crate::firewall::Entry;
use crate::{debug, error, warn};

impl Bans {
    /// Compares the kernel with the database and repairs both ways: a stored ban missing from
    /// the kernel is put back (one batch), an entry in Ampere's chain or sets that no active
    /// ban stands for is removed. If the chain, sets or table are gone, what Ampere owns is
    /// made again and every ban put back; an iptables chain is the admin's: the error says
    /// what to run.
    pub fn audit(&mut self, cfg: &Config, now: i64) {
        self.counters.audits += 1;
        self.counters.last_audit = now;
        self.audit_due = Instant::now() + self.audit_interval;
        let active: Vec<Entry> = match self.store.active() {
            Ok(a) => a
                .iter()
                .map(Ban::entry)
                .chain(self.unstored.iter().map(|u| u.held))
                .collect(),
            Err(e) => {
                self.counters.store_errors += 1;
                error!("audit: {e}");
                return;
            }
        };
        let kernel = match self.fw.list() {
            Ok(k) => k,
            Err(e) => {
                warn!("audit: cannot list the firewall ({e}); making it again");
                let rebuilt = self
                    .fw
                    .prepare()
                    .and_then(|()| self.fw.restore(&active, now));
                match rebuilt {
                    Ok(()) => {
                        self.counters.repaired += active.len() as u64;
                        self.retry = RETRY_FIRST;
                        warn!(
                            "audit: firewall made again, {} ban(s) put back",
                            active.len()
                        );
                    }
                    Err(e) => {
                        self.counters.firewall_errors += 1;
                        error!("audit: {e}");
                        self.retry_soon();
                    }
                }
                return;
            }
        };
        let held: std::collections::HashSet<IpNet> = kernel.iter().copied().collect();
        let stored: std::collections::HashSet<IpNet> = active.iter().map(|b| b.net).collect();
        let missing: Vec<Entry> = active
            .into_iter()
            .filter(|b| !held.contains(&b.net))
            .collect();
        let mut failed = 0;
        for (b, r) in missing.iter().zip(self.apply(&missing, now)) {
            match r {
                Ok(()) => {
                    self.counters.repaired += 1;
                    warn!(
                        "audit: ban {} was missing from the kernel: put back",
                        net_text(&b.net)
                    );
                }
                Err(e) => {
                    failed += 1;
                    error!(
                        "audit: ban {} missing from the kernel, and putting it back failed: {e}",
                        net_text(&b.net)
                    );
                }
            }
        }
        let strays: Vec<IpNet> = kernel
            .iter()
            .filter(|n| !stored.contains(n))
            .copied()
            .collect();
        let strays = if self.adopt {
            // The database lost track of what it had: the kernel is the better witness.
            if self.adopt_strays(cfg, &strays, now) {
                self.adopt = false;
            }
            Vec::new()
        } else if !self.store_trusted() {
            debug!(
                "audit: the database refuses writes; {} entries without a stored ban stay",
                strays.len()
            );
            Vec::new()
        } else {
            strays
        };
        for net in &strays {
            match self.fw.unban(net) {
                Ok(()) => {
                    self.counters.strays_removed += 1;
                    warn!(
                        "audit: {} was in the kernel without an active ban: removed",
                        net_text(net)
                    );
                }
                Err(e) => {
                    failed += 1;
                    error!("audit: removing {} failed: {e}", net_text(net));
                }
            }
        }
        self.counters.firewall_errors += failed;
        if failed > 0 {
            self.retry_soon();
        } else {
            self.retry = RETRY_FIRST;
        }
        self.audit_rules(now);
        self.check_path();
    }

    /// The rest of what makes a ban real: Ampere's chain, sets or table as it wrote them. A
    /// flushed chain, a stray rule above the bans, a lost limit: everything Ampere owns is
    /// made again in one transaction, with exactly the database's bans.
    fn audit_rules(&mut self, now: i64) {
        let faults = match self.fw.faults() {
            Ok(f) if f.is_empty() => return,
            Ok(f) => f,
            Err(e) => {
                // A chain or table gone is found by the listing of the next audit.
                debug!("audit: cannot read the rules: {e}");
                return;
            }
        };
        for f in &faults {
            warn!("audit: {f}");
        }
        let rebuilt = self
            .store
            .active()
            .map_err(|e| e.to_string())
            .and_then(|a| {
                let entries: Vec<Entry> = a
                    .iter()
                    .map(Ban::entry)
                    .chain(self.unstored.iter().map(|u| u.held))
                    .collect();
                self.fw
                    .restore(&entries, now)
                    .map(|()| entries.len())
                    .map_err(|e| e.to_string())
            });
        match rebuilt {
            Ok(n) => {
                self.counters.repaired += faults.len() as u64;
                warn!("audit: Ampere's rules made again as it wrote them, {n} ban(s) in place");
            }
            Err(e) => {
                self.counters.firewall_errors += 1;
                error!("audit: making the rules again failed: {e}");
                self.retry_soon();
            }
        }
    }

    /// Warns when the admin's rule path into the chain changes for the worse (and says when
    /// it is clean again); `status` and `why` show what is wrong meanwhile.
    pub fn check_path(&mut self) {
        let now = match self.fw.path_faults() {
            Ok(f) => f,
            Err(e) => {
                debug!("cannot read INPUT: {e}");
                return;
            }
        };
        for f in now.iter().filter(|f| !self.path_faults.contains(f)) {
            warn!("{f}");
        }
        if now.is_empty() && !self.path_faults.is_empty() {
            crate::info!("the rule path into Ampere's chain is clean again");
        }
        self.path_faults = now;
    }

    /// What keeps the bans from dropping on the admin's side, as the last check found it.
    pub fn path_faults(&self) -> &[String] {
        &self.path_faults
    }
}
