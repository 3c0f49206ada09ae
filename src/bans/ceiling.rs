//! `max_bans`: a ceiling on the daemon's active bans, so that the database, the kernel's
//! chain or set, and every listing of them stay bounded whatever an attacker sends (200,000
//! distinct addresses make 200,000 bans otherwise). An admin's `-a` bans are not counted:
//! the admin bounds those, and an imported blocklist must not stop the daemon's own bans. At the ceiling the temporary ban closest
//! to its end makes room: it would have been lifted soonest anyway, and a repeat offender's
//! long escalated ban outlives a first offender's. Permanent bans never make room; when
//! every ban is permanent, new bans are refused, counted and logged.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Bans;
use crate::ban::{BanRequest, Origin};
use crate::config::Config;
use crate::error;

/// Refusals are logged at most this often (each line says how many so far).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

impl Bans {
    /// Before `pending` is recorded: lifts as many temporary bans as the new ones among
    /// `pending` need room for, and takes out of `pending` the new ones there is still no
    /// room for. Returns the networks lifted (for the hooks). Only with the database
    /// writable and the kernel lock held: otherwise the bans wait in memory, which
    /// `MAX_UNSTORED` bounds.
    pub(super) fn make_room(&mut self, cfg: &Config, pending: &mut Vec<BanRequest>) -> Vec<IpNet> {
        if cfg.max_bans == 0 || pending.is_empty() {
            return Vec::new();
        }
        let active = match self.store.active_count_of(Origin::Daemon) {
            Ok(n) => n as usize + self.unstored.len(),
            Err(e) => {
                error!("{e}");
                return Vec::new();
            }
        };
        if active + pending.len() <= cfg.max_bans {
            // Room even if every one is new: no lookup per ban (`record` makes its own).
            return Vec::new();
        }
        // The bans in `pending` that would be new: not stored, not twice in `pending`.
        let mut seen = HashSet::with_capacity(pending.len());
        let new: Vec<bool> = pending
            .iter()
            .map(|b| seen.insert(b.net) && !self.store.is_banned(&b.net).unwrap_or(true))
            .collect();
        let wanted = new.iter().filter(|&&n| n).count();
        let over = (active + wanted).saturating_sub(cfg.max_bans);
        if over == 0 {
            return Vec::new();
        }
        self.wrote();
        let lifted = match self.store.end_soonest_temporary(over) {
            Ok(nets) => nets,
            Err(e) => {
                self.store_failed(&e);
                return Vec::new();
            }
        };
        self.read_next_expiry();
        let mut made_room = Vec::with_capacity(lifted.len());
        if !lifted.is_empty() {
            match self.fw.unban_many(&lifted) {
                Ok(()) => made_room = lifted,
                Err(e) => {
                    // The rows are inactive: the audit takes the entries out.
                    self.counters.firewall_errors += 1;
                    error!("lifting {} ban(s) to make room: {e}", lifted.len());
                    self.retry_soon();
                }
            }
        }
        self.counters.unbans += made_room.len() as u64;
        self.counters.made_room += made_room.len() as u64;
        let refuse = over - made_room.len().min(over);
        if refuse > 0 {
            self.refuse_newest(cfg, pending, &new, refuse);
        }
        made_room
    }

    /// Takes the last `n` new bans out of `pending`: every active ban is permanent.
    fn refuse_newest(
        &mut self,
        cfg: &Config,
        pending: &mut Vec<BanRequest>,
        new: &[bool],
        n: usize,
    ) {
        let mut left = n;
        let mut keep = Vec::with_capacity(pending.len());
        for (b, &is_new) in pending.drain(..).zip(new).rev() {
            if is_new && left > 0 {
                left -= 1;
            } else {
                keep.push(b);
            }
        }
        keep.reverse();
        *pending = keep;
        self.counters.refused += n as u64;
        let now = Instant::now();
        if self
            .refusal_logged
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            self.refusal_logged = Some(now);
            error!(
                "max_bans ({}) reached and no temporary ban can make room: {} ban(s) refused so far (logged once a minute); raise max_bans, or set bantime so that bans end",
                cfg.max_bans, self.counters.refused
            );
        }
    }
}
