//! The audit: the kernel compared with the database and repaired both ways. What differs is
//! found either here (`audit`: at a stop, in tests, and for `-a`'s own process) or, in the
//! daemon, by the survey child (`survey.rs`) off the loop; either way `repair` acts on it,
//! checking each difference against the database again first (the kernel or the database
//! may have changed since it was found).

use std::collections::HashSet;
use std::time::Instant;

use ipnet::IpNet;

use super::{Ban, Bans, RETRY_FIRST};
use crate::addr::net_text;
use crate::config::Config;
use crate::firewall::{Entry, FwError};
use crate::{debug, error, warn};

/// What an audit found.
#[derive(Debug, Default)]
pub struct Found {
    /// The kernel could not be listed (a chain, set or table gone): what is Ampere's is made
    /// again with every ban.
    pub unlisted: Option<String>,
    /// Stored and active, not in the kernel.
    pub missing: Vec<IpNet>,
    /// In the kernel, with no active stored ban.
    pub strays: Vec<IpNet>,
    /// How the rules differ from what Ampere wrote (`Backend::faults`).
    pub faults: Vec<String>,
    /// The admin's rule path as read (`Backend::path_faults`); None when it could not be.
    pub path: Option<Vec<String>>,
}

impl Found {
    /// The kernel's entries `kernel` against the active bans `stored`.
    pub fn diff(kernel: &[IpNet], stored: &HashSet<IpNet>) -> Found {
        let held: HashSet<&IpNet> = kernel.iter().collect();
        Found {
            missing: stored
                .iter()
                .filter(|n| !held.contains(n))
                .copied()
                .collect(),
            strays: kernel
                .iter()
                .filter(|n| !stored.contains(n))
                .copied()
                .collect(),
            ..Found::default()
        }
    }

    /// At most `n` of the missing and `n` of the strays, taken from this one: a repair of
    /// a million is spread over turns of the loop.
    pub fn take_part(&mut self, n: usize) -> Found {
        let cut = |v: &mut Vec<IpNet>| v.split_off(v.len().saturating_sub(n));
        Found {
            missing: cut(&mut self.missing),
            strays: cut(&mut self.strays),
            ..Found::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.strays.is_empty()
    }
}

/// Strays named one by one in the log; the rest are counted.
const SHOWN: usize = 10;

impl Bans {
    /// Compares the kernel with the database in this process and repairs both ways: a
    /// stored ban missing from the kernel is put back (one batch), an entry in Ampere's
    /// chain or sets that no active ban stands for is removed. If the chain, sets or table
    /// are gone, what Ampere owns is made again and every ban put back; an iptables chain is
    /// the admin's: the error says what to run.
    pub fn audit(&mut self, cfg: &Config, now: i64) {
        let stored: HashSet<IpNet> = match self.store.active() {
            Ok(a) => a
                .iter()
                .map(|b| b.net)
                .chain(self.unstored.iter().map(|u| u.held.net))
                .collect(),
            Err(e) => {
                self.counters.store_errors += 1;
                error!("audit: {e}");
                return;
            }
        };
        let mut found = match self.fw.list() {
            Ok(kernel) => Found::diff(&kernel, &stored),
            Err(e) => Found {
                unlisted: Some(e.to_string()),
                ..Found::default()
            },
        };
        match self.fw.faults() {
            Ok(f) => found.faults = f,
            // A chain or table gone is found by the listing.
            Err(e) => debug!("audit: cannot read the rules: {e}"),
        }
        found.path = self.fw.path_faults().ok();
        self.counted_audit(now);
        self.repair(cfg, found, now);
    }

    /// An audit is done (its differences maybe still to repair).
    pub(super) fn counted_audit(&mut self, now: i64) {
        self.counters.audits += 1;
        self.counters.last_audit = now;
        self.audit_due = Instant::now() + self.audit_interval;
    }

    /// Acts on what an audit found, each difference checked against the database first.
    pub(super) fn repair(&mut self, cfg: &Config, found: Found, now: i64) {
        if let Some(e) = &found.unlisted {
            self.remake(&format!("cannot list the firewall ({e})"), now);
            return;
        }
        let mut failed = 0;
        let missing: Vec<Entry> = found
            .missing
            .iter()
            .filter_map(|n| self.stored_entry(n))
            .collect();
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
        let strays: Vec<IpNet> = found
            .strays
            .iter()
            .filter(|n| self.stored_entry(n).is_none())
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
        failed += self.remove_strays(&strays);
        self.counters.firewall_errors += failed;
        if failed > 0 {
            self.retry_soon();
        } else {
            self.retry = RETRY_FIRST;
        }
        if !found.faults.is_empty() {
            for f in &found.faults {
                warn!("audit: {f}");
            }
            if self.remake("Ampere's rules differ from what it wrote", now) {
                self.counters.repaired += found.faults.len() as u64 - 1;
            }
        }
        if let Some(path) = found.path {
            self.note_path(path);
        }
    }

    /// The ban the database (or the memory of unstored bans) holds for exactly `net`, as
    /// the kernel should hold it.
    fn stored_entry(&self, net: &IpNet) -> Option<Entry> {
        if let Some(u) = self.unstored.iter().find(|u| u.held.net == *net) {
            return Some(u.held);
        }
        match self.store.active_ban(net) {
            Ok(b) => b.as_ref().map(Ban::entry),
            // Unknown: neither put back nor removed now; the next audit asks again.
            Err(e) => {
                debug!("audit: {e}");
                None
            }
        }
    }

    /// Removes `strays` from the kernel; returns how many failed.
    fn remove_strays(&mut self, strays: &[IpNet]) -> u64 {
        // One batch first (past 64 an iptables chain is rebuilt in one restore): an import
        // killed half-way left 2,000 strays, and an exec each held the loop for seconds.
        if strays.len() > 1 && self.fw.unban_many(strays).is_ok() {
            self.counters.strays_removed += strays.len() as u64;
            for net in strays.iter().take(SHOWN) {
                warn!(
                    "audit: {} was in the kernel without an active ban: removed",
                    net_text(net)
                );
            }
            if strays.len() > SHOWN {
                warn!(
                    "audit: and {} more entries without an active ban: removed",
                    strays.len() - SHOWN
                );
            }
            return 0;
        }
        let mut failed = 0;
        for net in strays {
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
        failed
    }

    /// Makes everything Ampere owns again (its table, sets, chain's rules) with exactly the
    /// database's bans, in one transaction per tool; true if it worked.
    fn remake(&mut self, why: &str, now: i64) -> bool {
        let extra: Vec<Entry> = self.unstored.iter().map(|u| u.held).collect();
        let stored = super::restore::Stored {
            store: &self.store,
            extra: &extra,
        };
        let rebuilt = self
            .fw
            .prepare()
            .and_then(|()| self.fw.restore(&stored, now))
            .map_err(|e: FwError| e.to_string())
            .and_then(|()| {
                let n = self.store.active_count().map_err(|e| e.to_string())?;
                Ok(usize::try_from(n).unwrap_or(0) + extra.len())
            });
        match rebuilt {
            Ok(n) => {
                self.counters.repaired += 1;
                self.retry = RETRY_FIRST;
                warn!("audit: {why}: made again as Ampere writes them, {n} ban(s) in place");
                true
            }
            Err(e) => {
                self.counters.firewall_errors += 1;
                error!("audit: {why}, and making the rules again failed: {e}");
                self.retry_soon();
                false
            }
        }
    }

    /// Reads the admin's rule path now (at start; the audit reads it with the rest).
    pub fn check_path(&mut self) {
        match self.fw.path_faults() {
            Ok(f) => self.note_path(f),
            Err(e) => debug!("cannot read INPUT: {e}"),
        }
    }

    /// Warns when the admin's rule path into the chain changes for the worse (and says when
    /// it is clean again); `status` and `why` show what is wrong meanwhile.
    fn note_path(&mut self, now: Vec<String>) {
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
