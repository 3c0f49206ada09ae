//! A ban through its stages, one type each: decided (`BanRequest`, what every door hands to
//! `Bans`), stored (`Ban`, every field final: the database's row), and held by the kernel
//! (`firewall::Entry`: an address and when it ends).

use std::borrow::Cow;

use ipnet::IpNet;

use crate::clock;
use crate::firewall::Entry;
use crate::score::Evidence;

/// Who asked for a ban. Stored with it, shown by `-l`, and how an unban is explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The daemon's scoring, and its subnet escalation.
    Daemon,
    /// An admin's `ampere -a`.
    Manual,
    /// A decision pulled from CrowdSec's Local API (`crowdsec`).
    Crowdsec,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Daemon => "daemon",
            Origin::Manual => "manual",
            Origin::Crowdsec => "crowdsec",
        }
    }

    /// The origin a stored row names (an unknown one is the daemon's, as before origins).
    pub fn parse(s: &str) -> Origin {
        match s {
            "manual" => Origin::Manual,
            "crowdsec" => Origin::Crowdsec,
            _ => Origin::Daemon,
        }
    }
}

/// How long a requested ban lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// As the config's escalation says for this network's count of bans (`bantime`,
    /// `bantime_factor`, `permanent_after`): settled when the store counts it.
    Escalating,
    /// Until an admin lifts it (`-a`).
    Permanent,
    /// Until this unix second (a CrowdSec decision's duration).
    Until(i64),
    /// On weak evidence (`score::Evidence`): as `Escalating` would end it, at most
    /// `ceiling` seconds, and not counted toward `permanent_after` (the network's count of
    /// bans stays).
    Weak { ceiling: i64 },
}

/// A ban decided and not stored yet: what a door (the pipeline, `-a`, CrowdSec, subnet
/// escalation) asks of `Bans`, after the admission check let it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRequest {
    pub net: IpNet,
    pub origin: Origin,
    /// What it is for: the Asterisk event that tipped the host over, `manual`, `subnet`,
    /// `recovered` (adopted from the kernel), or CrowdSec's scenario. Borrowed where it is a
    /// name Ampere knows: a replay of a scan decides a ban every few events.
    pub reason: Cow<'static, str>,
    /// The event's Service (PJSIP, AMI, ...), or, from CrowdSec, the decision's origin; empty
    /// otherwise.
    pub service: Cow<'static, str>,
    /// The event's AccountID, cut to `MAX_ACCOUNT` bytes: attacker text, escaped wherever
    /// it is printed.
    pub account: String,
    /// The penalty reached, and the events that raised it (0 where there were none).
    pub penalty: u32,
    pub events: u32,
    /// Unix seconds when it was decided.
    pub at: i64,
    pub lifetime: Lifetime,
}

/// Longest AccountID kept with a ban.
pub const MAX_ACCOUNT: usize = 256;

impl BanRequest {
    /// A request with no event behind it (`-a`, a subnet, a CrowdSec decision, an adopted
    /// kernel entry).
    pub fn new(
        net: IpNet,
        origin: Origin,
        reason: impl Into<Cow<'static, str>>,
        at: i64,
        lifetime: Lifetime,
    ) -> Self {
        BanRequest {
            net,
            origin,
            reason: reason.into(),
            service: Cow::Borrowed(""),
            account: String::new(),
            penalty: 0,
            events: 0,
            at,
            lifetime,
        }
    }

    /// What the ban rests on.
    pub fn evidence(&self) -> Evidence {
        match self.lifetime {
            Lifetime::Weak { .. } => Evidence::Weak,
            _ => Evidence::Strong,
        }
    }

    /// The ban this request becomes for a network banned `before` times already (weak bans
    /// not counted), first banned at `first`, ending as `escalation(at, count)` says when
    /// it escalates.
    pub fn settle(
        &self,
        before: i64,
        first: i64,
        escalation: &dyn Fn(i64, i64) -> Option<i64>,
    ) -> Ban {
        let count = match self.lifetime {
            Lifetime::Weak { .. } => before,
            _ => before + 1,
        };
        Ban {
            net: self.net,
            reason: self.reason.to_string(),
            service: self.service.to_string(),
            account: self.account.clone(),
            penalty: self.penalty,
            events: self.events,
            origin: self.origin,
            since: self.at,
            first,
            count,
            evidence: self.evidence(),
            expires: match self.lifetime {
                Lifetime::Escalating => escalation(self.at, count),
                Lifetime::Permanent => None,
                Lifetime::Until(t) => Some(t),
                Lifetime::Weak { ceiling } => {
                    let cap = self.at.saturating_add(ceiling);
                    Some(escalation(self.at, before + 1).map_or(cap, |e| e.min(cap)))
                }
            },
        }
    }
}

/// A stored ban: every field final, as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub net: IpNet,
    /// As `BanRequest::reason`.
    pub reason: String,
    /// As `BanRequest::service`.
    pub service: String,
    /// As `BanRequest::account`.
    pub account: String,
    pub penalty: u32,
    /// The events that raised the penalty (0 where there were none); not stored.
    pub events: u32,
    pub origin: Origin,
    /// Unix seconds of this ban and of the first ban of this network ever.
    pub since: i64,
    pub first: i64,
    /// How many times this network has been banned, this ban included (escalation); bans
    /// on weak evidence are not counted.
    pub count: i64,
    /// What the ban rests on: a weak one is temporary, of one address, never spread.
    pub evidence: Evidence,
    /// Unix seconds when it ends; None = permanent.
    pub expires: Option<i64>,
}

impl Ban {
    /// What the kernel holds of it.
    pub fn entry(&self) -> Entry {
        Entry {
            net: self.net,
            expires: self.expires,
        }
    }

    /// `permanent` or `until <local time>`, for log lines.
    pub fn until(&self) -> String {
        self.expires.map_or_else(
            || "permanent".to_string(),
            |e| format!("until {}", clock::format_time(e)),
        )
    }
}
