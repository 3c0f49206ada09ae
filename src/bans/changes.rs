//! What a write of the bans changed, as the write path returns it: for the admin, each
//! entry's `Outcome`; for the daemon, the `Changes` it tells once (`daemon/publish.rs`).

use ipnet::IpNet;

use crate::ban::Ban;
use crate::firewall::FwError;

/// What became of one ban or unban an admin asked for.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// `-a` of an active ban, `-d` of an address that is not banned.
    Unchanged,
    /// `-a` of an active temporary ban: now permanent (the README promises that).
    MadePermanent,
    /// Recorded (or removed) in the database, but the firewall failed.
    Firewall(FwError),
}

/// Why a ban left the kernel (the `onunban` hook's REASON is `as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lift {
    /// Its time was up.
    Expired,
    /// Its time was up before the database ever took it (an outage).
    ExpiredUnstored,
    /// Lifted early to make room for a newer ban under `max_bans`.
    MaxBans,
    /// Folded into this subnet ban, which holds it now.
    Folded(IpNet),
    /// An admin's `-d`.
    Manual,
    /// The admission check refuses it now (trust came after it).
    Protected,
    /// CrowdSec deleted its decision.
    CrowdsecDeleted,
    /// A whole list from CrowdSec no longer holds it.
    CrowdsecUnlisted,
}

impl Lift {
    pub fn as_str(self) -> &'static str {
        match self {
            Lift::Expired | Lift::ExpiredUnstored => "expired",
            Lift::MaxBans => "max_bans",
            Lift::Folded(_) => "subnet",
            Lift::Manual => "manual",
            Lift::Protected => "trusted",
            Lift::CrowdsecDeleted | Lift::CrowdsecUnlisted => "crowdsec",
        }
    }
}

/// What a write changed in the database and the kernel, for whoever tells it (the
/// daemon's `publish`: the log, the hooks, CrowdSec).
#[derive(Debug, Default)]
pub struct Changes {
    /// Bans now in the kernel, as stored (or, in a database outage, as the kernel holds them).
    pub banned: Vec<Ban>,
    pub lifted: Vec<(IpNet, Lift)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.banned.is_empty() && self.lifted.is_empty()
    }

    pub fn extend(&mut self, other: Changes) {
        self.banned.extend(other.banned);
        self.lifted.extend(other.lifted);
    }
}
