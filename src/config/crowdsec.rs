//! The `crowdsec_*` keys: where CrowdSec's Local API is and how Ampere talks to it, as a
//! watcher (pushing its bans) and as a bouncer (applying LAPI's decisions). Off unless set.

use crate::error::Invalid;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::key::{one, Effect::Live, Key, Section};
use super::value::{duration, number};

/// What is set of the `crowdsec_*` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crowdsec {
    /// LAPI's address, from `crowdsec_url` (`http://ADDR:PORT`, an address and no name: a
    /// lookup would block the loop).
    pub url: Option<SocketAddr>,
    /// The watcher's machine id and password (`cscli machines add`): both set, Ampere pushes.
    pub login: String,
    pub password: String,
    /// The bouncer's key (`cscli bouncers add`): set, Ampere pulls.
    pub bouncer_key: String,
    /// Seconds between two pulls of the decision stream.
    pub poll: u64,
    /// The duration pushed for a permanent ban (LAPI has no permanent decisions).
    pub duration: u64,
    /// Most active bans from LAPI at once; 0 = no ceiling.
    pub max: usize,
}

impl Crowdsec {
    pub fn pushes(&self) -> bool {
        self.url.is_some() && !self.login.is_empty() && !self.password.is_empty()
    }

    pub fn pulls(&self) -> bool {
        self.url.is_some() && !self.bouncer_key.is_empty()
    }

    /// The settings before any key is read (`Default` fills in the table's defaults).
    pub(super) fn blank() -> Crowdsec {
        Crowdsec {
            url: None,
            login: String::new(),
            password: String::new(),
            bouncer_key: String::new(),
            poll: 0,
            duration: 0,
            max: 0,
        }
    }

    /// A machine id without a password or the reverse, credentials without an address:
    /// what is set does nothing, and the warning says so.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        match (self.login.is_empty(), self.password.is_empty()) {
            (false, true) => Err((
                "crowdsec_login",
                "crowdsec_login is set but crowdsec_password is not: nothing is pushed to CrowdSec"
                    .into(),
            )),
            (true, false) => Err((
                "crowdsec_password",
                "crowdsec_password is set but crowdsec_login is not: nothing is pushed to CrowdSec"
                    .into(),
            )),
            _ if self.url.is_none() && !(self.login.is_empty() && self.bouncer_key.is_empty()) => {
                Err((
                    if self.login.is_empty() {
                        "crowdsec_bouncer_key"
                    } else {
                        "crowdsec_login"
                    },
                    "CrowdSec credentials are set but crowdsec_url is not: CrowdSec is not used"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `http://ADDR[:PORT][/]`. No TLS, no name: DESIGN.md says how to reach a LAPI that is
/// not on this host or its network.
fn lapi_url(v: &str) -> Result<SocketAddr, Invalid> {
    if v.starts_with("https://") {
        return Err(format!(
            "`{v}`: Ampere speaks plain HTTP to LAPI; reach a remote one through a local tunnel (doc/crowdsec.md)"
        ).into());
    }
    let rest = v
        .strip_prefix("http://")
        .ok_or_else(|| format!("expected http://ADDRESS:PORT, not `{v}`"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || {
        Invalid::from(format!(
            "expected http://ADDRESS:PORT with an IP address, not `{v}`"
        ))
    };
    if let Ok(sa) = SocketAddr::from_str(rest) {
        return Ok(sa);
    }
    let host = rest.trim_start_matches('[').trim_end_matches(']');
    IpAddr::from_str(host)
        .map(|ip| SocketAddr::new(ip, 80))
        .map_err(|_| bad())
}

/// A credential that goes in a header or a JSON body: printable ASCII without spaces, so
/// that it can never end a header line.
fn credential(v: &str) -> Result<String, Invalid> {
    if v.len() > 256 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("expected printable ASCII without spaces, at most 256 characters".into());
    }
    Ok(v.to_string())
}

/// Nothing for a key that is not set (`-t` prints `(none)`).
fn unless_empty(name: &str, v: &str) -> Vec<(String, String)> {
    if v.is_empty() {
        Vec::new()
    } else {
        one(name, v)
    }
}

pub(super) static KEYS: &[Key] = &[
    Key {
        show: |c| {
            c.crowdsec
                .url
                .iter()
                .map(|u| ("crowdsec_url".to_string(), format!("http://{u}")))
                .collect()
        },
        ..key!(
            "crowdsec_url",
            Live,
            "",
            "http://127.0.0.1:8080",
            Section::Crowdsec,
            "CrowdSec's Local API: plain HTTP to an IP address (no TLS, no name): LAPI on this host or a private network; reach another through a local tunnel. Off unless set.",
            |c, v| c.crowdsec.url = Some(lapi_url(v)?),
            |_c| ""
        )
    },
    Key {
        show: |c| unless_empty("crowdsec_login", &c.crowdsec.login),
        ..key!(
            "crowdsec_login",
            Live,
            "",
            "pbx-1",
            Section::Crowdsec,
            "A machine (`cscli machines add pbx-1 --password ...`) ...",
            |c, v| c.crowdsec.login = credential(v)?,
            |_c| ""
        )
    },
    Key {
        secret: true,
        show: |c| unless_empty("crowdsec_password", &c.crowdsec.password),
        ..key!(
            "crowdsec_password",
            Live,
            "",
            "s3cret",
            Section::Crowdsec,
            "... and its password: every ban Ampere decides on strong evidence is pushed as an alert.",
            |c, v| c.crowdsec.password = credential(v)?,
            |_c| ""
        )
    },
    key!(
        "crowdsec_duration",
        Live,
        "4h",
        "1d",
        Section::Crowdsec,
        "The duration pushed for a permanent ban.",
        |c, v| c.crowdsec.duration = duration(v, 1)?,
        |c| c.crowdsec.duration
    ),
    Key {
        secret: true,
        show: |c| unless_empty("crowdsec_bouncer_key", &c.crowdsec.bouncer_key),
        ..key!(
            "crowdsec_bouncer_key",
            Live,
            "",
            "0123456789abcdef",
            Section::Crowdsec,
            "A bouncer's key (`cscli bouncers add pbx-1`): LAPI's decisions are applied as bans of origin crowdsec; never one that takes in a trusted address, loopback, the AMI host or the PBX's own.",
            |c, v| c.crowdsec.bouncer_key = credential(v)?,
            |_c| ""
        )
    },
    key!(
        "crowdsec_poll",
        Live,
        "10s",
        "1m",
        Section::Crowdsec,
        "How often the decision stream is pulled.",
        |c, v| c.crowdsec.poll = duration(v, 1)?,
        |c| c.crowdsec.poll
    ),
    key!(
        "crowdsec_max",
        Live,
        "20000",
        "5000",
        Section::Crowdsec,
        "The most active bans from CrowdSec at once (0 = no ceiling).",
        |c, v| c.crowdsec.max = number(v, 0, 1 << 31)? as usize,
        |c| c.crowdsec.max
    ),
];
