//! What a write changed, told once, whichever door it came through (an event, a subnet, an
//! admin's `-a`/`-d` handed to the daemon, CrowdSec, expiry, `max_bans`, trust that came
//! later): the log line, the `onban`/`onunban` hook, the alert for CrowdSec. The counters
//! are the write path's own (`bans::Counters`), read by the stats, which are written here
//! too (SIGUSR1's line, the Prometheus file).
//!
//! Not for CrowdSec's own bans and lifts: no hook (a community list of 50,000 would start
//! 50,000 children) and no alert back to LAPI; `pull.rs` logs a line per pull instead.

use super::Daemon;
use crate::addr::net_text;
use crate::ban::{Ban, Origin};
use crate::bans::{Changes, Lift};
use crate::error;
use crate::info;
use crate::log::printable;
use crate::score::Evidence;
use crate::stats::{self, Stats};

impl Daemon {
    pub(super) fn publish(&mut self, changes: Changes) {
        for b in &changes.banned {
            if b.origin != Origin::Crowdsec {
                info!("{}", ban_line(b));
                let account = printable(b.account.as_bytes());
                self.hooks.banned(&net_text(&b.net), &b.reason, &account);
            }
            self.lapi.banned(b);
        }
        for (net, why) in &changes.lifted {
            let text = net_text(net);
            let line = match why {
                Lift::Expired => "ban expired".to_string(),
                Lift::ExpiredUnstored => "ban expired (it never reached the database)".to_string(),
                Lift::MaxBans => format!(
                    "made room for a newer ban (max_bans = {})",
                    self.cfg.max_bans
                ),
                Lift::Folded(subnet) => format!("folded into {}", net_text(subnet)),
                Lift::Manual => "lifted by an admin (ampere -d)".to_string(),
                Lift::Protected => "it is protected now".to_string(),
                Lift::CrowdsecDeleted => "CrowdSec deleted its decision".to_string(),
                Lift::CrowdsecUnlisted => "no longer in CrowdSec's list".to_string(),
            };
            info!("unban {text}: {line}");
            if !matches!(why, Lift::CrowdsecDeleted | Lift::CrowdsecUnlisted) {
                self.hooks.unbanned(&text, why.as_str());
            }
        }
    }
}

/// The log line of a ban, by where it came from.
fn ban_line(b: &Ban) -> String {
    let text = net_text(&b.net);
    let what = match b.origin {
        Origin::Daemon if b.reason == "subnet" => {
            format!("subnet of {} bans within findtime", b.events)
        }
        Origin::Daemon => format!(
            "{} from account `{}` ({}), penalty {}",
            b.reason,
            printable(b.account.as_bytes()),
            printable(b.service.as_bytes()),
            b.penalty
        ),
        Origin::Manual => "manual (ampere -a)".to_string(),
        Origin::Crowdsec => format!("CrowdSec, scenario {}", printable(b.reason.as_bytes())),
    };
    match b.evidence {
        Evidence::Strong => format!("ban {text}: {what}; ban #{} {}", b.count, b.until()),
        Evidence::Weak if b.reason == crate::judge::STALE_PASSWORD => format!(
            "ban {text}: {what}; an account failing where it logged in before: {}, not counted",
            b.until()
        ),
        Evidence::Weak => format!(
            "ban {text}: {what}; on evidence a forged packet can make: {}, not counted",
            b.until()
        ),
    }
}

/// The counters, for SIGUSR1's log line and the Prometheus file (`statsfile`).
impl Daemon {
    pub(super) fn stats(&self) -> Stats {
        let t = self.judge.engine.table();
        Stats {
            engine: self.judge.engine.counters.clone(),
            bans: self.bans.counters,
            ami: self.link.counters(),
            active_bans: self.bans.active_count(),
            unstored: self.bans.unstored(),
            table_hosts: t.len(),
            table_capacity: t.capacity(),
            table_evictions: t.evictions(),
            connected: self.link.connected(),
            last_event: self.last_event,
            crowdsec: self.lapi.counters(),
        }
    }

    pub(super) fn write_stats(&self) {
        if let Some(path) = &self.cfg.statsfile {
            if let Err(e) = stats::write_atomic(path, &self.stats().prometheus()) {
                error!("cannot write {}: {e}", path.display());
            }
        }
    }
}
