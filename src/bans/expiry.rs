//! Expiry: the next end read from the database, and the bans whose time is up lifted,
//! database first, then the kernel in one batch.

use std::time::Instant;

use ipnet::IpNet;

use super::{Bans, Lift};
use crate::addr::net_text;
use crate::error;

/// Bans lifted by expiry in one turn: a CrowdSec list or an import of a million with one
/// duration ends in one second, and its one `UPDATE` and unban batch held the loop for as
/// long as they took. The rest come the next turns.
pub(super) const EXPIRE_PER_TURN: usize = 5_000;

impl Bans {
    pub(super) fn read_next_expiry(&mut self) {
        self.expiry_read = Instant::now();
        match self.store.next_expiry() {
            Ok(n) => self.next_expiry = n,
            Err(e) => error!("{e}"),
        }
    }

    /// Lifts the bans whose time is up, at most `EXPIRE_PER_TURN` (the next turn comes at
    /// once for the rest: the next end read is due): database first (the count stays for
    /// escalation), then the firewall. Returns the networks unbanned.
    pub(super) fn expire(&mut self, now: i64) -> Vec<(IpNet, Lift)> {
        self.wrote();
        let due = match self.store.expire_due(now, EXPIRE_PER_TURN) {
            Ok(d) => d,
            Err(e) => {
                // Lifted once the database takes the change: never a kernel without the row.
                self.store_failed(&e);
                return Vec::new();
            }
        };
        // One batch first: bans made together (a scan's burst) end together, and an exec
        // each held the loop for as long as they took.
        if due.len() > 1 && self.fw.unban_many(&due).is_ok() {
            self.counters.unbans += due.len() as u64;
            self.read_next_expiry();
            return due.into_iter().map(|n| (n, Lift::Expired)).collect();
        }
        let mut lifted = Vec::with_capacity(due.len());
        for net in due {
            match self.fw.unban(&net) {
                Ok(()) => {
                    self.counters.unbans += 1;
                    lifted.push((net, Lift::Expired));
                }
                Err(e) => {
                    self.counters.firewall_errors += 1;
                    error!("unban {} (expired): {e}", net_text(&net));
                }
            }
        }
        self.read_next_expiry();
        lifted
    }
}
