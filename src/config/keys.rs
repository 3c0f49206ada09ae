//! Every config key in one table, one row each (what a row holds is in `key.rs`). Loading,
//! `-t`, SIGHUP and the documentation test are all driven by this table, so a new key is one
//! new row.

use std::path::PathBuf;

use super::key::{list, one, path_opt, Effect, Key};
use super::value::{
    boolean, chain_name, command_path, duration, host_name, number, rate, rate_text,
};
use super::{BackendKind, RuleTarget, TrustName};
use crate::addr::parse_net;
use crate::log;
use crate::score::{EventKind, Weight};

pub fn find(key: &str) -> Option<&'static Key> {
    all().find(|k| k.matches(key))
}

/// Every key: this table, then CrowdSec's (`crowdsec.rs`).
pub fn all() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().chain(super::crowdsec::KEYS)
}

use Effect::{Live, Reconnect, Restart};

static KEYS: &[Key] = &[
    key!(
        "host",
        Reconnect,
        "127.0.0.1",
        "::1",
        |c, v| c.host = v.to_string(),
        |c| &c.host
    ),
    key!(
        "port",
        Reconnect,
        "5038",
        "5039",
        |c, v| c.port = number(v, 1, 65_535)? as u16,
        |c| c.port
    ),
    key!(
        "user",
        Reconnect,
        "ampere",
        "guard",
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
            |c, v| c.pass = v.to_string(),
            |c| &c.pass
        )
    },
    key!(
        "loyalty",
        Live,
        "3",
        "5",
        |c, v| c.loyalty = number(v, 1, 100_000)? as u32,
        |c| c.loyalty
    ),
    key!(
        "chain",
        Restart,
        "ampere",
        "pbx_ban",
        |c, v| c.chain = chain_name(v)?,
        |c| &c.chain
    ),
    Key {
        name: "trust",
        effect: Live,
        default: "",
        example: "192.0.2.0/24",
        secret: false,
        repeat: true,
        set: |c, _, v| {
            match (parse_net(v), host_name(v)) {
                (Ok(net), _) => c.trust.push(net),
                (Err(_), Some(name)) => c.trust_names.push(TrustName { name, line: 0 }),
                (Err(_), None) => {
                    return Err(format!("`{v}` is not an address, a network or a host name"))
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
        |c, v| c.trust_refresh = duration(v, 1)?,
        |c| c.trust_refresh
    ),
    key!(
        "db",
        Restart,
        "/var/lib/ampere/ampere.db",
        "/tmp/ampere-example.db",
        |c, v| c.db = PathBuf::from(v),
        |c| c.db.display()
    ),
    key!(
        "socket",
        Restart,
        "/run/ampere/ampere.sock",
        "/tmp/ampere-example.sock",
        |c, v| c.socket = PathBuf::from(v),
        |c| c.socket.display()
    ),
    key!(
        "iptables",
        Restart,
        "/usr/sbin/iptables",
        "/sbin/iptables",
        |c, v| c.iptables = command_path(v)?,
        |c| c.iptables.display()
    ),
    key!(
        "ip6tables",
        Restart,
        "/usr/sbin/ip6tables",
        "/sbin/ip6tables",
        |c, v| c.ip6tables = command_path(v)?,
        |c| c.ip6tables.display()
    ),
    key!(
        "iptables_restore",
        Restart,
        "/usr/sbin/iptables-restore",
        "/sbin/iptables-restore",
        |c, v| c.iptables_restore = command_path(v)?,
        |c| c.iptables_restore.display()
    ),
    key!(
        "ip6tables_restore",
        Restart,
        "/usr/sbin/ip6tables-restore",
        "/sbin/ip6tables-restore",
        |c, v| c.ip6tables_restore = command_path(v)?,
        |c| c.ip6tables_restore.display()
    ),
    key!(
        "target",
        Restart,
        "DROP",
        "REJECT",
        |c, v| c.target = match v.to_ascii_uppercase().as_str() {
            "DROP" => RuleTarget::Drop,
            "REJECT" => RuleTarget::Reject,
            _ => return Err(format!("must be DROP or REJECT, not `{v}`")),
        },
        |c| c.target.as_str()
    ),
    key!(
        "ipv6",
        Restart,
        "yes",
        "no",
        |c, v| c.ipv6 = boolean(v)?,
        |c| if c.ipv6 { "yes" } else { "no" }
    ),
    key!(
        "backend",
        Restart,
        "iptables",
        "nft",
        |c, v| c.backend = BackendKind::parse(v).ok_or_else(|| {
            let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("must be one of {}, not `{v}`", names.join(", "))
        })?,
        |c| c.backend.as_str()
    ),
    key!(
        "ipset",
        Restart,
        "/usr/sbin/ipset",
        "/sbin/ipset",
        |c, v| c.ipset = command_path(v)?,
        |c| c.ipset.display()
    ),
    key!(
        "nft",
        Restart,
        "/usr/sbin/nft",
        "/sbin/nft",
        |c, v| c.nft = command_path(v)?,
        |c| c.nft.display()
    ),
    key!(
        "maxelem",
        Restart,
        "1048576",
        "200000",
        |c, v| c.maxelem = number(v, 1024, 1 << 31)?,
        |c| c.maxelem
    ),
    key!(
        "ports",
        Restart,
        "5060,5061",
        "5060,5061,4569",
        |c, v| {
            let ports = list(v)
                .into_iter()
                .map(|p| number(p, 1, 65_535).map(|n| n as u16))
                .collect::<Result<Vec<u16>, _>>()?;
            if ports.is_empty() {
                return Err("needs at least one port".into());
            }
            c.ports = ports
        },
        |c| c
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ),
    key!(
        "bantime",
        Live,
        "0",
        "1h",
        |c, v| c.bantime = duration(v, 0)?,
        |c| c.bantime
    ),
    key!(
        "bantime_factor",
        Live,
        "2",
        "1.5",
        |c, v| c.bantime_factor = v
            .parse::<f64>()
            .ok()
            .filter(|f| (1.0..=100.0).contains(f))
            .ok_or_else(|| format!("expected a factor from 1 to 100, not `{v}`"))?,
        |c| c.bantime_factor
    ),
    key!(
        "bantime_max",
        Live,
        "0",
        "7d",
        |c, v| c.bantime_max = duration(v, 0)?,
        |c| c.bantime_max
    ),
    key!(
        "permanent_after",
        Live,
        "0",
        "5",
        |c, v| c.permanent_after = number(v, 0, 1000)? as u32,
        |c| c.permanent_after
    ),
    key!(
        "weak_bantime",
        Live,
        "3600",
        "30m",
        |c, v| c.weak_bantime = duration(v, 60)?,
        |c| c.weak_bantime
    ),
    key!(
        "weak_known_bantime",
        Live,
        "300",
        "2m",
        |c, v| c.weak_known_bantime = duration(v, 60)?,
        |c| c.weak_known_bantime
    ),
    key!(
        "stale_password_limit",
        Live,
        "30",
        "60",
        |c, v| c.stale_password_limit = number(v, 1, 255)? as u32,
        |c| c.stale_password_limit
    ),
    key!(
        "max_bans",
        Live,
        "65536",
        "200000",
        |c, v| c.max_bans = number(v, 0, 1 << 31)? as usize,
        |c| c.max_bans
    ),
    Key {
        show: |c| path_opt("onban", &c.onban),
        ..key!(
            "onban",
            Live,
            "",
            "/usr/local/bin/notify-ban",
            |c, v| c.onban = Some(command_path(v)?),
            |_c| ""
        )
    },
    Key {
        show: |c| path_opt("onunban", &c.onunban),
        ..key!(
            "onunban",
            Live,
            "",
            "/usr/local/bin/notify-unban",
            |c, v| c.onunban = Some(command_path(v)?),
            |_c| ""
        )
    },
    key!(
        "hook_timeout",
        Live,
        "30",
        "10",
        |c, v| c.hook_timeout = duration(v, 1)?,
        |c| c.hook_timeout
    ),
    Key {
        show: |c| path_opt("statsfile", &c.statsfile),
        ..key!(
            "statsfile",
            Live,
            "",
            "/run/ampere.prom",
            |c, v| c.statsfile = Some(PathBuf::from(v)),
            |_c| ""
        )
    },
    key!(
        "stats_interval",
        Live,
        "60",
        "2m",
        |c, v| c.stats_interval = duration(v, 1)?,
        |c| c.stats_interval
    ),
    key!(
        "log",
        Live,
        "",
        "syslog",
        |c, v| c.log = Some(log::Target::parse(v)),
        |c| match &c.log {
            None | Some(log::Target::Stderr) => "stderr".to_string(),
            Some(log::Target::Syslog) => "syslog".to_string(),
            Some(log::Target::File(p)) => p.display().to_string(),
        }
    ),
    key!(
        "services",
        Live,
        "PJSIP SIP IAX2 AMI",
        "PJSIP IAX2",
        |c, v| {
            let names: Vec<String> = list(v).into_iter().map(String::from).collect();
            if names.is_empty() {
                return Err("needs at least one service name".into());
            }
            c.services = names
        },
        |c| c.services.join(" ")
    ),
    key!(
        "blind_guard",
        Live,
        "10/s burst 20",
        "5/s burst 10",
        |c, v| c.blind_guard = rate(v)?,
        |c| rate_text(c.blind_guard)
    ),
    key!(
        "flood",
        Live,
        "off",
        "50/s burst 250",
        |c, v| c.flood = rate(v)?,
        |c| rate_text(c.flood)
    ),
    key!(
        "audit_interval",
        Live,
        "5m",
        "1m",
        |c, v| c.audit_interval = duration(v, 1)?,
        |c| c.audit_interval
    ),
    key!(
        "ban_unknown_account",
        Live,
        "yes",
        "no",
        |c, v| c.ban_unknown_account = boolean(v)?,
        |c| if c.ban_unknown_account { "yes" } else { "no" }
    ),
    key!(
        "findtime",
        Live,
        "3600",
        "10m",
        |c, v| c.findtime = duration(v, 1)?,
        |c| c.findtime
    ),
    key!(
        "ipv4_prefix",
        Live,
        "32",
        "24",
        |c, v| c.ipv4_prefix = number(v, 16, 32)? as u8,
        |c| c.ipv4_prefix
    ),
    key!(
        "ipv6_prefix",
        Live,
        "64",
        "128",
        |c, v| c.ipv6_prefix = number(v, 32, 128)? as u8,
        |c| c.ipv6_prefix
    ),
    key!(
        "subnet_after",
        Live,
        "3",
        "5",
        |c, v| c.subnet_after = number(v, 0, 32)? as usize,
        |c| c.subnet_after
    ),
    key!(
        "subnet_v4",
        Live,
        "24",
        "20",
        |c, v| c.subnet_v4 = number(v, 8, 31)? as u8,
        |c| c.subnet_v4
    ),
    key!(
        "subnet_v6",
        Live,
        "48",
        "56",
        |c, v| c.subnet_v6 = number(v, 16, 127)? as u8,
        |c| c.subnet_v6
    ),
    key!(
        "table_size",
        Restart,
        "4096",
        "65536",
        |c, v| c.table_size = number(v, 16, 1 << 24)? as usize,
        |c| c.table_size
    ),
    key!(
        "known_max",
        Live,
        "4096",
        "1000",
        |c, v| c.known_max = number(v, 16, 1 << 20)? as usize,
        |c| c.known_max
    ),
    key!(
        "known_forget",
        Live,
        "28d",
        "7d",
        |c, v| c.known_forget = duration(v, 3600)?,
        |c| c.known_forget
    ),
    key!(
        "connect_timeout",
        Live,
        "5",
        "2s",
        |c, v| c.connect_timeout = duration(v, 1)?,
        |c| c.connect_timeout
    ),
    key!(
        "ping_interval",
        Live,
        "30",
        "1m",
        |c, v| c.ping_interval = duration(v, 1)?,
        |c| c.ping_interval
    ),
    key!(
        "ping_timeout",
        Live,
        "10",
        "3",
        |c, v| c.ping_timeout = duration(v, 1)?,
        |c| c.ping_timeout
    ),
    key!(
        "reconnect_min",
        Live,
        "1",
        "2",
        |c, v| c.reconnect_min = duration(v, 1)?,
        |c| c.reconnect_min
    ),
    key!(
        "reconnect_max",
        Live,
        "30",
        "1h",
        |c, v| c.reconnect_max = duration(v, 1)?,
        |c| c.reconnect_max
    ),
    Key {
        name: "weight.*",
        effect: Live,
        default: "",
        example: "weight.InvalidAccountID = 7",
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
];
