//! A ban: one type from the moment it is decided to the database row and the kernel entry.

use ipnet::IpNet;

use crate::clock;

/// Who asked for a ban. Stored with it, shown by `-l`, and how an unban is explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The daemon's scoring.
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub net: IpNet,
    /// The event that tipped the host over the limit (an Asterisk event name), or `manual`.
    pub reason: String,
    /// The event's Service (PJSIP, AMI, ...); empty for a manual ban.
    pub service: String,
    /// Its AccountID: attacker text, escaped wherever it is printed.
    pub account: String,
    /// The penalty reached (0 for a manual ban).
    pub penalty: u32,
    /// The events that raised it (0 where there were none); not stored.
    pub events: u32,
    pub origin: Origin,
    /// Unix seconds of this ban and of the first ban of this network ever.
    pub since: i64,
    pub first: i64,
    /// How many times this network has been banned, this ban included (escalation).
    pub count: i64,
    /// Unix seconds when it ends; None = permanent.
    pub expires: Option<i64>,
}

impl Ban {
    /// A ban decided at `now`; count and expiry are settled when the store records it.
    pub fn new(
        net: IpNet,
        reason: &str,
        account: &str,
        penalty: u32,
        origin: Origin,
        now: i64,
    ) -> Ban {
        Ban {
            net,
            reason: reason.to_string(),
            service: String::new(),
            account: account.to_string(),
            penalty,
            events: 0,
            origin,
            since: now,
            first: now,
            count: 1,
            expires: None,
        }
    }

    /// Seconds left at `now` for a kernel timeout (None = permanent, else at least 1). None
    /// too while the wall clock is not set: Ampere lifts the ban itself once it is.
    pub fn timeout(&self, now: i64) -> Option<u64> {
        if !clock::is_set(now) {
            return None;
        }
        clock::remaining(self.expires, now)
    }

    /// `permanent` or `until <local time>`, for log lines.
    pub fn until(&self) -> String {
        self.expires.map_or_else(
            || "permanent".to_string(),
            |e| format!("until {}", clock::format_time(e)),
        )
    }
}
