//! The keys of the bans (their lifetime, the ceiling), the firewall, the hooks and stats,
//! and storage: rows of the one key table (`keys.rs`).

use std::path::PathBuf;

use super::super::key::{list, one, path_opt, Effect, Key, Section};
use super::super::value::{boolean, chain_name, command_path, duration, number};
use super::super::{BackendKind, RuleTarget};
use crate::log;

use Effect::{Live, Restart};

pub(super) static KEYS: &[Key] = &[
    key!(
        "bantime",
        Live,
        "0",
        "1h",
        Section::Bans,
        "How long a ban lasts; 0 = permanent (the original Ampere's way).",
        |c, v| c.bantime = duration(v, 0)?,
        |c| c.bantime
    ),
    key!(
        "bantime_factor",
        Live,
        "2",
        "1.5",
        Section::Bans,
        "Each repeat ban of an address lasts this many times longer.",
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
        Section::Bans,
        "The ceiling for a ban's length; 0 = none.",
        |c, v| c.bantime_max = duration(v, 0)?,
        |c| c.bantime_max
    ),
    key!(
        "permanent_after",
        Live,
        "0",
        "5",
        Section::Bans,
        "The Nth ban of an address is permanent; 0 = never. Bans made with `ampere -a` are always permanent.",
        |c, v| c.permanent_after = number(v, 0, 1000)? as u32,
        |c| c.permanent_after
    ),
    key!(
        "weak_bantime",
        Live,
        "1h",
        "30m",
        Section::Bans,
        "The longest ban on evidence a forged packet can make (PJSIP over UDP, chan_sip without its own nonce): one address, not counted toward permanent_after, never a subnet, never sent to CrowdSec, never on one event.",
        |c, v| c.weak_bantime = duration(v, 60)?,
        |c| c.weak_bantime
    ),
    key!(
        "weak_known_bantime",
        Live,
        "5m",
        "2m",
        Section::Bans,
        "The same for a host that logged in before (logged as a warning).",
        |c, v| c.weak_known_bantime = duration(v, 60)?,
        |c| c.weak_known_bantime
    ),
    key!(
        "stale_password_limit",
        Live,
        "30",
        "60",
        Section::Bans,
        "An account that fails from an address it authenticated from before (a device with an old password; its office's other phones registered) is counted apart: after this many points (1 a wrong password) a ban of weak_known_bantime, named in the log, `status` and `why`; never permanent, never a subnet.",
        |c, v| c.stale_password_limit = number(v, 1, 255)? as u32,
        |c| c.stale_password_limit
    ),
    key!(
        "max_bans",
        Live,
        "65536",
        "200000",
        Section::Bans,
        "The most active bans the daemon keeps. At the ceiling the temporary ban closest to its end is lifted to make room; permanent bans never are, and when all are permanent new bans are refused (counted, logged). 0 = no ceiling. Bans made with `ampere -a` are not counted.",
        |c, v| c.max_bans = number(v, 0, 1 << 31)? as usize,
        |c| c.max_bans
    ),
    key!(
        "backend",
        Restart,
        "iptables",
        "nft",
        Section::Firewall,
        "iptables: one rule per ban in `chain` (simple; fine for thousands of bans). ipset: two hash:net sets named <chain>-v4 and <chain>-v6 and one match rule per family in `chain` (one `ipset -` kept running: the fastest bans; 100,000s of bans; needs the ipset tool). nft: a table `inet <chain>` of Ampere's own with hash sets for addresses, interval sets for networks and a drop rule for `ports`; no chain to set up (needs nft).",
        |c, v| c.backend = BackendKind::parse(v).ok_or_else(|| {
            let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("must be one of {}, not `{v}`", names.join(", "))
        })?,
        |c| c.backend.as_str()
    ),
    key!(
        "maxelem",
        Restart,
        "1048576",
        "200000",
        Section::Firewall,
        "ipset: the largest set size.",
        |c, v| c.maxelem = number(v, 1024, 1 << 31)?,
        |c| c.maxelem
    ),
    key!(
        "ports",
        Restart,
        "5060,5061,4569",
        "5060,5061,4569,5080",
        Section::Firewall,
        "nft: the destination ports (UDP and TCP) banned hosts lose, and the guards watch: SIP's and IAX2's (4569: a host banned from an IAX2 log line loses it too).",
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
        "chain",
        Restart,
        "ampere",
        "pbx_ban",
        Section::Firewall,
        "The user chain in the filter table (iptables and ip6tables); nft: the table's name.",
        |c, v| c.chain = chain_name(v)?,
        |c| &c.chain
    ),
    key!(
        "target",
        Restart,
        "DROP",
        "REJECT",
        Section::Firewall,
        "DROP or REJECT.",
        |c, v| c.target = match v.to_ascii_uppercase().as_str() {
            "DROP" => RuleTarget::Drop,
            "REJECT" => RuleTarget::Reject,
            _ => return Err(format!("must be DROP or REJECT, not `{v}`").into()),
        },
        |c| c.target.as_str()
    ),
    key!(
        "ipv6",
        Restart,
        "yes",
        "no",
        Section::Firewall,
        "`no` where ip6tables is not available: IPv6 hosts are then logged but not banned.",
        |c, v| c.ipv6 = boolean(v)?,
        |c| if c.ipv6 { "yes" } else { "no" }
    ),
    key!(
        "iptables",
        Restart,
        "/usr/sbin/iptables",
        "/sbin/iptables",
        Section::Firewall,
        "The path of iptables.",
        |c, v| c.iptables = command_path(v)?,
        |c| c.iptables.display()
    ),
    key!(
        "ip6tables",
        Restart,
        "/usr/sbin/ip6tables",
        "/sbin/ip6tables",
        Section::Firewall,
        "Of ip6tables.",
        |c, v| c.ip6tables = command_path(v)?,
        |c| c.ip6tables.display()
    ),
    key!(
        "iptables_restore",
        Restart,
        "/usr/sbin/iptables-restore",
        "/sbin/iptables-restore",
        Section::Firewall,
        "Of iptables-restore (a restart's restore, bursts of bans).",
        |c, v| c.iptables_restore = command_path(v)?,
        |c| c.iptables_restore.display()
    ),
    key!(
        "ip6tables_restore",
        Restart,
        "/usr/sbin/ip6tables-restore",
        "/sbin/ip6tables-restore",
        Section::Firewall,
        "Of ip6tables-restore.",
        |c, v| c.ip6tables_restore = command_path(v)?,
        |c| c.ip6tables_restore.display()
    ),
    key!(
        "ipset",
        Restart,
        "/usr/sbin/ipset",
        "/sbin/ipset",
        Section::Firewall,
        "Of ipset.",
        |c, v| c.ipset = command_path(v)?,
        |c| c.ipset.display()
    ),
    key!(
        "nft",
        Restart,
        "/usr/sbin/nft",
        "/sbin/nft",
        Section::Firewall,
        "Of nft.",
        |c, v| c.nft = command_path(v)?,
        |c| c.nft.display()
    ),
    key!(
        "nft_interactive",
        Restart,
        "yes",
        "no",
        Section::Firewall,
        "With backend nft, the daemon keeps one `nft -i` running and sends its bans through it (a ban in a fraction of a millisecond instead of an exec of nft); `no` execs nft for each batch. An nft built without its interactive mode (OpenWrt) is found at the start and exec'd.",
        |c, v| c.nft_interactive = boolean(v)?,
        |c| if c.nft_interactive { "yes" } else { "no" }
    ),
    Key {
        show: |c| path_opt("onban", &c.onban),
        ..key!(
            "onban",
            Live,
            "",
            "/usr/local/bin/notify-ban",
            Section::Notify,
            "Run as: onban ADDRESS EVENT ACCOUNT, without a shell; ACCOUNT comes from the attacker (escaped), so quote \"$3\" if the program is a shell script.",
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
            Section::Notify,
            "Run as: onunban ADDRESS REASON (expired, max_bans, manual, ...).",
            |c, v| c.onunban = Some(command_path(v)?),
            |_c| ""
        )
    },
    key!(
        "hook_timeout",
        Live,
        "30",
        "10",
        Section::Notify,
        "A hook still running after this is killed.",
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
            Section::Notify,
            "Prometheus text counters (node_exporter's textfile collector reads this format); none by default.",
            |c, v| c.statsfile = Some(PathBuf::from(v)),
            |_c| ""
        )
    },
    key!(
        "stats_interval",
        Live,
        "60",
        "2m",
        Section::Notify,
        "How often the file is rewritten.",
        |c, v| c.stats_interval = duration(v, 1)?,
        |c| c.stats_interval
    ),
    key!(
        "audit_interval",
        Live,
        "5m",
        "1m",
        Section::Storage,
        "How often the kernel is compared with the database and repaired both ways (sooner after a failed firewall step; with 100,000 bans or more, no sooner than 50 times the last audit's length).",
        |c, v| c.audit_interval = duration(v, 1)?,
        |c| c.audit_interval
    ),
    key!(
        "db",
        Restart,
        "/var/lib/ampere/ampere.db",
        "/tmp/ampere-example.db",
        Section::Storage,
        "SQLite: every ban is kept here and restored at start.",
        |c, v| c.db = PathBuf::from(v),
        |c| c.db.display()
    ),
    key!(
        "db_max_inactive",
        Live,
        "100000",
        "10000",
        Section::Storage,
        "Expired bans kept to make an address's next ban longer (about 170 bytes each on disk); beyond, the oldest go first. Active bans are never dropped.",
        |c, v| c.db_max_inactive = number(v, 100, 1 << 24)? as usize,
        |c| c.db_max_inactive
    ),
    key!(
        "ban_forget",
        Live,
        "180d",
        "30d",
        Section::Storage,
        "An address with no ban for this long is forgotten: its next ban is a first ban again.",
        |c, v| c.ban_forget = duration(v, 3600)?,
        |c| c.ban_forget
    ),
    key!(
        "socket",
        Restart,
        "/run/ampere/ampere.sock",
        "/tmp/ampere-example.sock",
        Section::Storage,
        "The control socket of `ampere status`, `why`, `-a` and `-d` (a Unix socket, root only; the directory is made if missing).",
        |c, v| c.socket = PathBuf::from(v),
        |c| c.socket.display()
    ),
    key!(
        "log",
        Live,
        "",
        "syslog",
        Section::Storage,
        "stderr, syslog (facility daemon, ident ampere) or a file path (reopened on SIGHUP); `-o FILE` overrides it.",
        |c, v| c.log = Some(log::Target::parse(v)),
        |c| match &c.log {
            None | Some(log::Target::Stderr) => "stderr".to_string(),
            Some(log::Target::Syslog) => "syslog".to_string(),
            Some(log::Target::File(p)) => p.display().to_string(),
        }
    ),
];
