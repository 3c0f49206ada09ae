//! Every config key in one table, one row each (what a row holds is in `key.rs`), in three
//! files by subject (here, `keys/kernel.rs`, `crowdsec.rs`). Loading, `-t`, SIGHUP and the
//! documents (`docs.rs` writes the sample configs and the man page from each row's section,
//! default and doc; `tests/docs.rs` holds them to it) are all driven by this table, so a new
//! key is one new row.

use std::path::PathBuf;

use super::key::{list, one, path_opt, Effect, Key, Section};
use super::value::{boolean, duration, host_name, number, rate, rate_text};
use super::TrustName;
use crate::addr::parse_net;
use crate::score::{EventKind, Weight};

pub fn find(key: &str) -> Option<&'static Key> {
    all().find(|k| k.matches(key))
}

/// Every key: this table (the AMI session, scoring, trust), the bans' and the kernel's
/// (`keys/kernel.rs`), then CrowdSec's (`crowdsec.rs`).
pub fn all() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().chain(kernel::KEYS).chain(super::crowdsec::KEYS)
}

mod kernel;

use Effect::{Live, Reconnect, Restart};

static KEYS: &[Key] = &[
    key!(
        "host",
        Reconnect,
        "127.0.0.1",
        "::1",
        Section::Ami,
        "AMI address: an IPv4 or IPv6 address, or a name (looked up at each connection); never banned.",
        |c, v| c.host = v.to_string(),
        |c| &c.host
    ),
    key!(
        "port",
        Reconnect,
        "5038",
        "5039",
        Section::Ami,
        "AMI port.",
        |c, v| c.port = number(v, 1, 65_535)? as u16,
        |c| c.port
    ),
    key!(
        "user",
        Reconnect,
        "ampere",
        "guard",
        Section::Ami,
        "The AMI user: the [section] name in /etc/asterisk/manager.conf.",
        |c, v| c.user = v.to_string(),
        |c| &c.user
    ),
    Key {
        secret: true,
        ..key!(
            "pass",
            Reconnect,
            "ampere",
            "s3cret",
            Section::Ami,
            "Its `secret`.",
            |c, v| c.pass = v.to_string(),
            |c| &c.pass
        )
    },
    key!(
        "connect_timeout",
        Live,
        "5",
        "2s",
        Section::Ami,
        "How long a connection attempt may take (durations take the units s, m, h, d: 5s, 10m, 2h, 1d).",
        |c, v| c.connect_timeout = duration(v, 1)?,
        |c| c.connect_timeout
    ),
    key!(
        "ping_interval",
        Live,
        "30",
        "1m",
        Section::Ami,
        "Send Action: Ping after this long without traffic.",
        |c, v| c.ping_interval = duration(v, 1)?,
        |c| c.ping_interval
    ),
    key!(
        "ping_timeout",
        Live,
        "10",
        "3",
        Section::Ami,
        "No answer (or no banner or login answer) in this time: the connection is dead.",
        |c, v| c.ping_timeout = duration(v, 1)?,
        |c| c.ping_timeout
    ),
    key!(
        "reconnect_min",
        Live,
        "1",
        "2",
        Section::Ami,
        "The first reconnect delay; it doubles per failure ...",
        |c, v| c.reconnect_min = duration(v, 1)?,
        |c| c.reconnect_min
    ),
    key!(
        "reconnect_max",
        Live,
        "30",
        "1h",
        Section::Ami,
        "... up to this, and is back to reconnect_min after a good login (after a session that had worked: 100 ms, then every 250 ms for a minute, then this schedule).",
        |c, v| c.reconnect_max = duration(v, 1)?,
        |c| c.reconnect_max
    ),
    key!(
        "blind_guard",
        Live,
        "10/s burst 20",
        "5/s burst 10",
        Section::Ami,
        "While Ampere is not logged in to AMI (Asterisk restarting, AMI unreachable) it cannot see attacks: each untrusted source (IPv6: each ipv6_prefix) may then send at most this many packets/s to the SIP ports, in Ampere's chain or nft table; lifted at login. `off` turns it off.",
        |c, v| c.blind_guard = rate(v)?,
        |c| rate_text(c.blind_guard)
    ),
    key!(
        "flood",
        Live,
        "off",
        "50/s burst 250",
        Section::Ami,
        "At all times: each untrusted source (IPv6: each ipv6_prefix, LAN addresses one by one) may send at most RATE packets/s to the SIP ports; it catches what AMI never reports (OPTIONS and INVITE floods, REGISTER storms). `flood = 50/s burst 250` lets an office of 60 phones behind one NAT re-register at once (4 packets each) without one drop; see doc/scoring.md.",
        |c, v| c.flood = rate(v)?,
        |c| rate_text(c.flood)
    ),
    Key {
        show: |c| path_opt("asterisk_log", &c.asterisk_log),
        ..key!(
            "asterisk_log",
            Live,
            "",
            "/var/log/asterisk/messages",
            Section::Ami,
            "Asterisk's log, followed for what AMI does not report: chan_iax2's wrong secrets and unknown peers (it sends no security event at all; set `authdebug = yes` in iax.conf, and a logger.conf line that writes `notice` and `warning` there). Its events are weak evidence: a name in a log line can hold line breaks. Off unless set.",
            |c, v| c.asterisk_log = Some(PathBuf::from(v)),
            |_c| ""
        )
    },
    key!(
        "loyalty",
        Live,
        "3",
        "5",
        Section::Scoring,
        "A host is banned when its penalty reaches loyalty x 5.",
        |c, v| c.loyalty = number(v, 1, 100_000)? as u32,
        |c| c.loyalty
    ),
    key!(
        "findtime",
        Live,
        "3600",
        "10m",
        Section::Scoring,
        "A host quiet this long starts from zero again.",
        |c, v| c.findtime = duration(v, 1)?,
        |c| c.findtime
    ),
    key!(
        "ipv6_prefix",
        Live,
        "64",
        "128",
        Section::Scoring,
        "IPv6 penalties and bans count per /64 (what one VPS or one home line gets); 128 = per address. A /64 that takes in a trusted address, the AMI host or the PBX's own is scored per address.",
        |c, v| c.ipv6_prefix = number(v, 32, 128)? as u8,
        |c| c.ipv6_prefix
    ),
    key!(
        "ipv4_prefix",
        Live,
        "32",
        "24",
        Section::Scoring,
        "The same for IPv4 (from 16 to 32). LAN addresses (private, link-local, unique-local) are always scored one by one.",
        |c, v| c.ipv4_prefix = number(v, 16, 32)? as u8,
        |c| c.ipv4_prefix
    ),
    key!(
        "subnet_after",
        Live,
        "3",
        "5",
        Section::Scoring,
        "This many distinct bans on strong evidence inside one subnet within findtime ban the subnet (the member bans fold into it); 0 = off. Never a subnet with a trusted address, the AMI host or the PBX's own in it.",
        |c, v| c.subnet_after = number(v, 0, 32)? as usize,
        |c| c.subnet_after
    ),
    key!(
        "subnet_v4",
        Live,
        "24",
        "20",
        Section::Scoring,
        "The subnet's size for IPv4.",
        |c, v| c.subnet_v4 = number(v, 8, 31)? as u8,
        |c| c.subnet_v4
    ),
    key!(
        "subnet_v6",
        Live,
        "48",
        "56",
        Section::Scoring,
        "And for IPv6 (a /48 is one site or one customer).",
        |c, v| c.subnet_v6 = number(v, 16, 127)? as u8,
        |c| c.subnet_v6
    ),
    key!(
        "table_size",
        Restart,
        "4096",
        "65536",
        Section::Scoring,
        "Hosts tracked at once (fixed memory); when full, a host that never logged in goes before one that did, then the lowest penalty, then the least recently seen.",
        |c, v| c.table_size = number(v, 16, 1 << 24)? as usize,
        |c| c.table_size
    ),
    key!(
        "known_max",
        Live,
        "4096",
        "1000",
        Section::Scoring,
        "Hosts and accounts remembered as legitimate (a login, a registration, a trunk), kept in the database across restarts.",
        |c, v| c.known_max = number(v, 16, 1 << 20)? as usize,
        |c| c.known_max
    ),
    key!(
        "known_forget",
        Live,
        "28d",
        "7d",
        Section::Scoring,
        "And forgotten after this long without being seen again.",
        |c, v| c.known_forget = duration(v, 3600)?,
        |c| c.known_forget
    ),
    key!(
        "services",
        Live,
        "PJSIP SIP IAX2 AMI",
        "PJSIP IAX2",
        Section::Scoring,
        "The Service: values whose events count.",
        |c, v| {
            let names: Vec<String> = list(v).into_iter().map(String::from).collect();
            if names.is_empty() {
                return Err("needs at least one service name".into());
            }
            c.services = names
        },
        |c| c.services.join(" ")
    ),
    Key {
        name: "weight.*",
        effect: Live,
        default: "",
        example: "weight.InvalidAccountID = 7",
        section: Section::Scoring,
        #[cfg(not(ampere_lean))]
        doc: "The weight of an event: N, or N/M (+M instead of +N when the penalty is one short of a multiple of 5: the original Ampere's rule), or `clear` (a legitimate event: start from zero), or 0 (ignore).",
        secret: false,
        repeat: false,
        set: |c, key, v| {
            let name = &key["weight.".len()..];
            let kind =
                EventKind::from_config(name).ok_or_else(|| format!("no such event `{name}`"))?;
            c.weights.set(kind, Weight::parse(v)?);
            Ok(())
        },
        show: |c| {
            EventKind::ALL
                .iter()
                .map(|&k| (format!("weight.{}", k.name()), c.weights.get(k).to_string()))
                .collect()
        },
    },
    key!(
        "ban_unknown_account",
        Live,
        "yes",
        "no",
        Section::Scoring,
        "An InvalidAccountID on strong evidence from a host that never logged in bans at once (a scanner's probe); `no` scores it by its weight instead.",
        |c, v| c.ban_unknown_account = boolean(v)?,
        |c| if c.ban_unknown_account { "yes" } else { "no" }
    ),
    Key {
        name: "trust",
        effect: Live,
        default: "",
        example: "192.0.2.0/24",
        section: Section::Trust,
        #[cfg(not(ampere_lean))]
        doc: "A network never banned: addr or addr/len, IPv4 or IPv6, or a host name with a dot (office.example.net, office.lan), trusted at the addresses it resolves to (A and AAAA); repeat the key for more. A ban of an address that becomes trusted is lifted at once.",
        secret: false,
        repeat: true,
        set: |c, _, v| {
            match (parse_net(v), host_name(v)) {
                (Ok(net), _) => c.trust.push(net),
                (Err(_), Some(name)) => c.trust_names.push(TrustName { name, line: 0 }),
                (Err(_), None) => {
                    return Err(format!("`{v}` is not an address, a network or a host name").into())
                }
            }
            Ok(())
        },
        show: |c| {
            let nets = c.trust.iter().map(|t| t.to_string());
            let names = c.trust_names.iter().map(|n| n.name.clone());
            nets.chain(names)
                .map(|t| ("trust".to_string(), t))
                .collect()
        },
    },
    key!(
        "trust_refresh",
        Live,
        "5m",
        "1h",
        Section::Trust,
        "How often the trusted names are looked up again; in a child process killed after 10 s, so DNS never holds up banning (the start waits for the first answer at most those 10 s). A name that stops resolving keeps its last addresses, and is logged.",
        |c, v| c.trust_refresh = duration(v, 1)?,
        |c| c.trust_refresh
    ),
];
