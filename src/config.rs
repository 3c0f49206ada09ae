//! `ampere.cfg`: `key = value` lines, compatible with the original C Ampere's files.
//!
//! Every problem is reported with file, line and the offending text. An invalid `trust` line is
//! an error, never skipped: a skipped trust line would lock the admin out.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;

use crate::log;
use crate::score::{EventKind, Weight, Weights};

pub const DEFAULT_PATH: &str = "/etc/ampere/ampere.cfg";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleTarget {
    Drop,
    Reject,
}

impl RuleTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleTarget::Drop => "DROP",
            RuleTarget::Reject => "REJECT",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Iptables,
    Ipset,
    Nft,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Iptables => "iptables",
            BackendKind::Ipset => "ipset",
            BackendKind::Nft => "nft",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from, for messages ("(defaults)" when no file was read).
    pub source: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub loyalty: u32,
    pub chain: String,
    pub trust: Vec<IpNet>,
    pub db: PathBuf,
    pub iptables: PathBuf,
    pub ip6tables: PathBuf,
    pub iptables_restore: PathBuf,
    pub ip6tables_restore: PathBuf,
    pub target: RuleTarget,
    pub ipv6: bool,
    pub backend: BackendKind,
    pub ipset: PathBuf,
    pub nft: PathBuf,
    pub maxelem: u64,
    /// Destination ports the nft backend's drop rule covers.
    pub ports: Vec<u16>,
    /// Seconds a ban lasts; 0 = permanent (the original's behaviour).
    pub bantime: u64,
    pub bantime_factor: f64,
    /// 0 = no ceiling.
    pub bantime_max: u64,
    /// The Nth ban of an address is permanent; 0 = never.
    pub permanent_after: u32,
    pub onban: Option<PathBuf>,
    pub onunban: Option<PathBuf>,
    pub hook_timeout: u64,
    pub statsfile: Option<PathBuf>,
    pub stats_interval: u64,
    pub log: Option<log::Target>,
    pub services: Vec<String>,
    pub findtime: u64,
    pub table_size: usize,
    pub connect_timeout: u64,
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub reconnect_min: u64,
    pub reconnect_max: u64,
    pub weights: Weights,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            source: "(defaults)".into(),
            host: "127.0.0.1".into(),
            port: 5038,
            user: "ampere".into(),
            pass: "ampere".into(),
            loyalty: 3,
            chain: "ampere".into(),
            trust: Vec::new(),
            db: "/var/lib/ampere/ampere.db".into(),
            iptables: "/usr/sbin/iptables".into(),
            ip6tables: "/usr/sbin/ip6tables".into(),
            iptables_restore: "/usr/sbin/iptables-restore".into(),
            ip6tables_restore: "/usr/sbin/ip6tables-restore".into(),
            target: RuleTarget::Drop,
            ipv6: true,
            backend: BackendKind::Iptables,
            ipset: "/usr/sbin/ipset".into(),
            nft: "/usr/sbin/nft".into(),
            maxelem: 1 << 20,
            ports: vec![5060, 5061],
            bantime: 0,
            bantime_factor: 2.0,
            bantime_max: 0,
            permanent_after: 0,
            onban: None,
            onunban: None,
            hook_timeout: 30,
            statsfile: None,
            stats_interval: 60,
            log: None,
            services: ["PJSIP", "SIP", "IAX2", "AMI"].map(String::from).to_vec(),
            findtime: 3600,
            table_size: 4096,
            connect_timeout: 5,
            ping_interval: 30,
            ping_timeout: 10,
            reconnect_min: 1,
            reconnect_max: 30,
            weights: Weights::default(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 0 when the error is about the file as a whole.
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug)]
/// A parsed file plus the warnings (unknown keys, a missing default file) to report.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads the config. `explicit` is true for `-c FILE`: then a missing file is an error; the
/// default path may be missing (defaults apply, with a warning), as with the original.
pub fn load(path: &Path, explicit: bool) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes, &file),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok(Loaded {
            config: Config::default(),
            warnings: vec![format!("{file}: not found, using built-in defaults")],
        }),
        Err(e) => Err(ConfigError {
            file,
            line: 0,
            msg: format!("cannot read: {e}"),
        }),
    }
}

pub fn parse(bytes: &[u8], file: &str) -> Result<Loaded, ConfigError> {
    let mut config = Config {
        source: file.to_string(),
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (idx, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = idx + 1;
        let err = |msg: String| ConfigError {
            file: file.to_string(),
            line,
            msg,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw)
            .map_err(|_| err(format!("not valid UTF-8: `{}`", log::printable(raw))))?;
        let Some((key, value)) = split_line(text).map_err(err)? else {
            continue;
        };
        match apply(&mut config, &key, &value) {
            Ok(true) => {}
            Ok(false) => warnings.push(format!("{file}:{line}: unknown key `{key}` (ignored)")),
            Err(msg) => return Err(err(format!("{key}: {msg}"))),
        }
    }
    Ok(Loaded { config, warnings })
}

/// Splits one line into a key (as written) and its value; `None` for blank and comment lines.
/// A comment starts at `#` or `;` at the start of a line or after white space, so that
/// `pass = abc#1` keeps its `#`; a double-quoted value may contain anything but `"`.
fn split_line(text: &str) -> Result<Option<(String, String)>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        return Ok(None);
    }
    let Some((key, rest)) = t.split_once('=') else {
        return Err(format!("expected `key = value`, found `{t}`"));
    };
    let key = key.trim().to_string();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("expected `key = value`, found `{t}`"));
    }
    let rest = rest.trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        let Some((inner, after)) = quoted.split_once('"') else {
            return Err(format!("unterminated quote in `{t}`"));
        };
        let after = after.trim();
        if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
            return Err(format!("text after the closing quote in `{t}`"));
        }
        inner.to_string()
    } else {
        strip_comment(rest).trim_end().to_string()
    };
    if value.is_empty() {
        return Err(format!("`{key}` has no value"));
    }
    Ok(Some((key, value)))
}

/// Cuts a `#` or `;` comment that starts a line or follows white space.
pub fn strip_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &s[..i];
        }
    }
    s
}

/// Returns Ok(false) for an unknown key. Keys are case-insensitive.
fn apply(c: &mut Config, key: &str, v: &str) -> Result<bool, String> {
    match key.to_ascii_lowercase().as_str() {
        "host" => c.host = v.to_string(),
        "port" => c.port = number(v, 1, 65_535)? as u16,
        "user" => c.user = v.to_string(),
        "pass" => c.pass = v.to_string(),
        "loyalty" => c.loyalty = number(v, 1, 100_000)? as u32,
        "chain" => c.chain = chain_name(v)?,
        "trust" => c.trust.push(parse_net(v)?),
        "db" => c.db = PathBuf::from(v),
        "iptables" => c.iptables = command_path(v)?,
        "ip6tables" => c.ip6tables = command_path(v)?,
        "iptables_restore" => c.iptables_restore = command_path(v)?,
        "ip6tables_restore" => c.ip6tables_restore = command_path(v)?,
        "target" => {
            c.target = match v.to_ascii_uppercase().as_str() {
                "DROP" => RuleTarget::Drop,
                "REJECT" => RuleTarget::Reject,
                _ => return Err(format!("must be DROP or REJECT, not `{v}`")),
            }
        }
        "ipv6" => c.ipv6 = boolean(v)?,
        "backend" => {
            c.backend = match v.to_ascii_lowercase().as_str() {
                "iptables" => BackendKind::Iptables,
                "ipset" => BackendKind::Ipset,
                "nft" | "nftables" => BackendKind::Nft,
                _ => return Err(format!("must be iptables, ipset or nft, not `{v}`")),
            }
        }
        "ipset" => c.ipset = command_path(v)?,
        "nft" => c.nft = command_path(v)?,
        "maxelem" => c.maxelem = number(v, 1024, 1 << 31)?,
        "ports" => {
            let ports: Result<Vec<u16>, _> = v
                .split(|ch: char| ch == ',' || ch.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|p| number(p, 1, 65_535).map(|n| n as u16))
                .collect();
            c.ports = ports?;
            if c.ports.is_empty() {
                return Err("needs at least one port".into());
            }
        }
        "bantime" => c.bantime = duration(v, 0)?,
        "bantime_factor" => {
            c.bantime_factor = v
                .parse::<f64>()
                .ok()
                .filter(|f| (1.0..=100.0).contains(f))
                .ok_or_else(|| format!("expected a factor from 1 to 100, not `{v}`"))?
        }
        "bantime_max" => c.bantime_max = duration(v, 0)?,
        "permanent_after" => c.permanent_after = number(v, 0, 1000)? as u32,
        "onban" => c.onban = Some(command_path(v)?),
        "onunban" => c.onunban = Some(command_path(v)?),
        "hook_timeout" => c.hook_timeout = duration(v, 1)?,
        "statsfile" => c.statsfile = Some(PathBuf::from(v)),
        "stats_interval" => c.stats_interval = duration(v, 1)?,
        "log" => c.log = Some(log::Target::parse(v)),
        "services" => {
            let list: Vec<String> = v
                .split(|ch: char| ch == ',' || ch.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if list.is_empty() {
                return Err("needs at least one service name".into());
            }
            c.services = list;
        }
        "findtime" => c.findtime = duration(v, 1)?,
        "table_size" => c.table_size = number(v, 16, 1 << 24)? as usize,
        "connect_timeout" => c.connect_timeout = duration(v, 1)?,
        "ping_interval" => c.ping_interval = duration(v, 1)?,
        "ping_timeout" => c.ping_timeout = duration(v, 1)?,
        "reconnect_min" => c.reconnect_min = duration(v, 1)?,
        "reconnect_max" => c.reconnect_max = duration(v, 1)?,
        _ => {
            if let Some(name) = key
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("weight."))
                .map(|_| &key[7..])
            {
                let kind = EventKind::from_config(name)
                    .ok_or_else(|| format!("no such event `{name}`"))?;
                c.weights.set(kind, Weight::parse(v)?);
            } else {
                return Ok(false);
            }
        }
    }
    if c.reconnect_min > c.reconnect_max {
        return Err(format!(
            "reconnect_min ({}) is above reconnect_max ({})",
            c.reconnect_min, c.reconnect_max
        ));
    }
    Ok(true)
}

fn number(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, not `{v}`"
        )),
    }
}

/// Seconds, with an optional unit: `90`, `90s`, `10m`, `2h`, `1d`.
fn duration(v: &str, min: u64) -> Result<u64, String> {
    let (digits, mult) = match v.as_bytes().last() {
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        Some(b'd') => (&v[..v.len() - 1], 86_400),
        _ => (v, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n >= min && n <= 10 * 365 * 86_400)
        .ok_or_else(|| format!("expected a duration such as 90, 90s, 10m, 2h or 1d, not `{v}`"))
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, not `{v}`")),
    }
}

/// iptables limits chain names to 28 characters; we also keep them to characters that can
/// never be read as an option or need quoting anywhere.
fn chain_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 28
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "`{v}` is not a valid chain name (1-28 of A-Z a-z 0-9 - _, not starting with -)"
        ))
    }
}

fn command_path(v: &str) -> Result<PathBuf, String> {
    if v.starts_with('/') {
        Ok(PathBuf::from(v))
    } else {
        Err(format!("must be an absolute path, not `{v}`"))
    }
}

/// `addr` or `addr/len`, IPv4 or IPv6; host bits are cleared (`10.1.2.3/8` = `10.0.0.0/8`).
pub fn parse_net(v: &str) -> Result<IpNet, String> {
    let net = if v.contains('/') {
        IpNet::from_str(v).map_err(|_| format!("`{v}` is not an address or network"))?
    } else {
        IpNet::from(IpAddr::from_str(v).map_err(|_| format!("`{v}` is not an address or network"))?)
    };
    Ok(net.trunc())
}

fn mask(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        "*".repeat(8)
    }
}

impl Config {
    /// The effective settings, one per line, for `ampere -t`; the AMI secret is masked.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut kv = |k: &str, v: &dyn fmt::Display| out.push_str(&format!("{k:<18} = {v}\n"));
        kv("# from", &self.source);
        kv("host", &self.host);
        kv("port", &self.port);
        kv("user", &self.user);
        kv("pass", &mask(&self.pass));
        kv("loyalty", &self.loyalty);
        kv("chain", &self.chain);
        for t in &self.trust {
            kv("trust", t);
        }
        kv("db", &self.db.display());
        kv("iptables", &self.iptables.display());
        kv("ip6tables", &self.ip6tables.display());
        kv("iptables_restore", &self.iptables_restore.display());
        kv("ip6tables_restore", &self.ip6tables_restore.display());
        kv("target", &self.target.as_str());
        kv("ipv6", &if self.ipv6 { "yes" } else { "no" });
        kv("backend", &self.backend.as_str());
        kv("ipset", &self.ipset.display());
        kv("nft", &self.nft.display());
        kv("maxelem", &self.maxelem);
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        kv("ports", &ports.join(","));
        kv("bantime", &self.bantime);
        kv("bantime_factor", &self.bantime_factor);
        kv("bantime_max", &self.bantime_max);
        kv("permanent_after", &self.permanent_after);
        let opt = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("(none)".to_string(), |p| p.display().to_string())
        };
        kv("onban", &opt(&self.onban));
        kv("onunban", &opt(&self.onunban));
        kv("hook_timeout", &self.hook_timeout);
        kv("statsfile", &opt(&self.statsfile));
        kv("stats_interval", &self.stats_interval);
        let log = match &self.log {
            None | Some(log::Target::Stderr) => "stderr".to_string(),
            Some(log::Target::Syslog) => "syslog".to_string(),
            Some(log::Target::File(p)) => p.display().to_string(),
        };
        kv("log", &log);
        kv("services", &self.services.join(" "));
        kv("findtime", &self.findtime);
        kv("table_size", &self.table_size);
        kv("connect_timeout", &self.connect_timeout);
        kv("ping_interval", &self.ping_interval);
        kv("ping_timeout", &self.ping_timeout);
        kv("reconnect_min", &self.reconnect_min);
        kv("reconnect_max", &self.reconnect_max);
        for k in EventKind::ALL {
            kv(&format!("weight.{}", k.name()), &self.weights.get(k));
        }
        out
    }

    /// When the `count`-th ban of an address made at `now` ends (unix seconds); None =
    /// permanent. Each repeat multiplies `bantime` by `bantime_factor`, up to `bantime_max`;
    /// the `permanent_after`-th ban is permanent.
    pub fn ban_expiry(&self, now: i64, count: i64) -> Option<i64> {
        if self.bantime == 0
            || (self.permanent_after > 0 && count >= i64::from(self.permanent_after))
        {
            return None;
        }
        let exp = (count.clamp(1, 1000) - 1) as i32;
        let mut secs = self.bantime as f64 * self.bantime_factor.powi(exp);
        if self.bantime_max > 0 {
            secs = secs.min(self.bantime_max as f64);
        }
        // Anything beyond ten years is as good as permanent, and keeps the sum in range.
        let secs = secs.min(10.0 * 365.0 * 86_400.0) as i64;
        Some(now.saturating_add(secs.max(1)))
    }

    /// Ban limit: `loyalty` units.
    pub fn limit(&self) -> u32 {
        self.loyalty.saturating_mul(crate::score::UNIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Loaded {
        parse(text.as_bytes(), "t.cfg").unwrap_or_else(|e| panic!("{e}"))
    }

    fn bad(text: &str) -> ConfigError {
        match parse(text.as_bytes(), "t.cfg") {
            Ok(_) => panic!("accepted: {text:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn original_sample_files_load_unchanged() {
        // The two sample configs shipped with the original C Ampere.
        let a = ok("pass = 123\nloyalty = 4\nchain = ampere-firewall\n");
        assert_eq!(a.config.pass, "123");
        assert_eq!(a.config.loyalty, 4);
        assert_eq!(a.config.chain, "ampere-firewall");
        assert!(a.warnings.is_empty());
        let b = ok("trust = 192.168.0.0/24\ntrust = 10.10.32.0/19\n");
        assert_eq!(
            b.config.trust,
            vec![
                "192.168.0.0/24".parse::<IpNet>().unwrap(),
                "10.10.32.0/19".parse::<IpNet>().unwrap()
            ]
        );
    }

    #[test]
    fn defaults() {
        let c = ok("").config;
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 5038);
        assert_eq!(c.user, "ampere");
        assert_eq!(c.pass, "ampere");
        assert_eq!(c.loyalty, 3);
        assert_eq!(c.limit(), 15);
        assert_eq!(c.chain, "ampere");
        assert!(c.trust.is_empty());
        assert_eq!(c.db, PathBuf::from("/var/lib/ampere/ampere.db"));
        assert_eq!(c.target, RuleTarget::Drop);
    }

    #[test]
    fn every_key() {
        let text = "\
host = ::1
port = 5039
user = guard
pass = s3cret
loyalty = 5
chain = pbx_ban
trust = 2001:db8::/32
trust = 192.0.2.7
db = /tmp/a.db
iptables = /sbin/iptables
ip6tables = /sbin/ip6tables
iptables_restore = /sbin/iptables-restore
ip6tables_restore = /sbin/ip6tables-restore
target = reject
ipv6 = no
log = syslog
services = PJSIP, IAX2
findtime = 10m
table_size = 65536
connect_timeout = 2s
ping_interval = 1m
ping_timeout = 3
reconnect_min = 2
reconnect_max = 1h
weight.InvalidAccountID = 7
weight.challengesent = 3/9
weight.SuccessfulAuth = 0
backend = nft
ipset = /sbin/ipset
nft = /sbin/nft
maxelem = 200000
ports = 5060 5061, 4569
bantime = 1h
bantime_factor = 1.5
bantime_max = 7d
permanent_after = 5
onban = /usr/local/bin/notify-ban
onunban = /usr/local/bin/notify-unban
hook_timeout = 10
statsfile = /run/ampere.prom
stats_interval = 2m
";
        let c = ok(text).config;
        assert_eq!(c.host, "::1");
        assert_eq!(c.port, 5039);
        assert_eq!(c.user, "guard");
        assert_eq!(c.pass, "s3cret");
        assert_eq!(c.loyalty, 5);
        assert_eq!(c.chain, "pbx_ban");
        assert_eq!(c.trust.len(), 2);
        assert_eq!(c.trust[1], "192.0.2.7/32".parse::<IpNet>().unwrap());
        assert_eq!(c.db, PathBuf::from("/tmp/a.db"));
        assert_eq!(c.iptables, PathBuf::from("/sbin/iptables"));
        assert_eq!(c.ip6tables, PathBuf::from("/sbin/ip6tables"));
        assert_eq!(c.iptables_restore, PathBuf::from("/sbin/iptables-restore"));
        assert_eq!(
            c.ip6tables_restore,
            PathBuf::from("/sbin/ip6tables-restore")
        );
        assert_eq!(c.target, RuleTarget::Reject);
        assert!(!c.ipv6);
        assert_eq!(c.log, Some(log::Target::Syslog));
        assert_eq!(c.services, vec!["PJSIP", "IAX2"]);
        assert_eq!(c.findtime, 600);
        assert_eq!(c.table_size, 65536);
        assert_eq!(c.connect_timeout, 2);
        assert_eq!(c.ping_interval, 60);
        assert_eq!(c.ping_timeout, 3);
        assert_eq!(c.reconnect_min, 2);
        assert_eq!(c.reconnect_max, 3600);
        let w = |k| c.weights.get(k);
        assert_eq!(
            w(EventKind::InvalidAccountID),
            Weight::Add { base: 7, bump: 7 }
        );
        assert_eq!(
            w(EventKind::ChallengeSent),
            Weight::Add { base: 3, bump: 9 }
        );
        assert_eq!(
            w(EventKind::SuccessfulAuth),
            Weight::Add { base: 0, bump: 0 }
        );
        assert_eq!(c.backend, BackendKind::Nft);
        assert_eq!(c.ipset, PathBuf::from("/sbin/ipset"));
        assert_eq!(c.nft, PathBuf::from("/sbin/nft"));
        assert_eq!(c.maxelem, 200_000);
        assert_eq!(c.ports, vec![5060, 5061, 4569]);
        assert_eq!(c.bantime, 3600);
        assert_eq!(c.bantime_factor, 1.5);
        assert_eq!(c.bantime_max, 7 * 86_400);
        assert_eq!(c.permanent_after, 5);
        assert_eq!(c.onban, Some(PathBuf::from("/usr/local/bin/notify-ban")));
        assert_eq!(
            c.onunban,
            Some(PathBuf::from("/usr/local/bin/notify-unban"))
        );
        assert_eq!(c.hook_timeout, 10);
        assert_eq!(c.statsfile, Some(PathBuf::from("/run/ampere.prom")));
        assert_eq!(c.stats_interval, 120);
    }

    #[test]
    fn escalation() {
        let c =
            ok("bantime = 1h\nbantime_factor = 2\nbantime_max = 1d\npermanent_after = 6\n").config;
        let h = 3600;
        assert_eq!(c.ban_expiry(1000, 1), Some(1000 + h));
        assert_eq!(c.ban_expiry(1000, 2), Some(1000 + 2 * h));
        assert_eq!(c.ban_expiry(1000, 3), Some(1000 + 4 * h));
        assert_eq!(c.ban_expiry(1000, 5), Some(1000 + 16 * h));
        assert_eq!(c.ban_expiry(1000, 5), Some(1000 + 16 * h));
        let capped = ok("bantime = 1h\nbantime_max = 5h\n").config;
        assert_eq!(capped.ban_expiry(0, 4), Some(5 * h));
        assert_eq!(capped.ban_expiry(0, 999), Some(5 * h));
        assert_eq!(c.ban_expiry(1000, 6), None, "permanent_after");
        assert_eq!(
            ok("").config.ban_expiry(1000, 1),
            None,
            "bantime 0 = permanent"
        );
        let huge = ok("bantime = 3650d\nbantime_factor = 100\n").config;
        assert!(huge.ban_expiry(0, 50).unwrap() <= 10 * 365 * 86_400);
    }

    #[test]
    fn comments_blank_lines_whitespace_crlf_bom() {
        let text = "\u{feff}# comment\r\n; another\r\n\r\n   \t\r\n  pass   =   abc#1  # trailing\r\nloyalty=6 ; trailing\r\nuser = \"a b ; c\" # q\r\n";
        let c = ok(text).config;
        assert_eq!(c.pass, "abc#1");
        assert_eq!(c.loyalty, 6);
        assert_eq!(c.user, "a b ; c");
    }

    #[test]
    fn ipv6_trust_networks_and_no_limit_of_16() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("trust = fd00:{i:x}::/48\n"));
        }
        text.push_str("trust = ::1\ntrust = 2001:db8:1:2::5/64\n");
        let c = ok(&text).config;
        assert_eq!(c.trust.len(), 42);
        assert_eq!(c.trust[40], "::1/128".parse::<IpNet>().unwrap());
        // host bits are cleared
        assert_eq!(c.trust[41], "2001:db8:1:2::/64".parse::<IpNet>().unwrap());
    }

    #[test]
    fn unknown_key_is_a_warning_with_line() {
        let l = ok("pass = 1\n\nfrobnicate = 3\n");
        assert_eq!(
            l.warnings,
            vec!["t.cfg:3: unknown key `frobnicate` (ignored)"]
        );
    }

    #[test]
    fn errors_name_line_and_text() {
        let cases: &[(&str, usize, &str)] = &[
            ("pass = 1\ntrust = 10.0.0.0/33\n", 2, "10.0.0.0/33"),
            ("trust = 192.168.1\n", 1, "192.168.1"),
            ("\n\ntrust = fe80::zz/64\n", 3, "fe80::zz/64"),
            ("loyalty = 0\n", 1, "`0`"),
            ("loyalty = lots\n", 1, "lots"),
            ("port = 70000\n", 1, "70000"),
            ("just some words\n", 1, "just some words"),
            ("= 5\n", 1, "= 5"),
            ("pass =\n", 1, "no value"),
            ("pass = # only a comment\n", 1, "no value"),
            ("user = \"open\n", 1, "unterminated"),
            ("user = \"a\" b\n", 1, "after the closing quote"),
            ("chain = -j ACCEPT\n", 1, "-j ACCEPT"),
            ("chain = a_chain_name_that_is_far_too_long\n", 1, "too_long"),
            ("target = ACCEPT\n", 1, "ACCEPT"),
            ("ipv6 = maybe\n", 1, "maybe"),
            ("iptables = iptables\n", 1, "absolute path"),
            ("findtime = 5x\n", 1, "5x"),
            ("table_size = 4\n", 1, "`4`"),
            ("services = ,\n", 1, "at least one"),
            ("weight.Nonsense = 1\n", 1, "Nonsense"),
            ("weight.ChallengeSent = -4\n", 1, "-4"),
            ("reconnect_min = 60\n", 1, "reconnect_min"),
            ("backend = pf\n", 1, "pf"),
            ("bantime_factor = 0.5\n", 1, "0.5"),
            ("ports = 5060,x\n", 1, "`x`"),
            ("onban = notify.sh\n", 1, "absolute path"),
            ("maxelem = 10\n", 1, "`10`"),
        ];
        for &(text, line, needle) in cases {
            let e = bad(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("t.cfg:{line}: ")), "{e}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_with_line() {
        let e = parse(b"pass = 1\nuser = \xff\xfe\n", "t.cfg").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("\\xff"), "{e}");
    }

    #[test]
    fn missing_file_explicit_vs_default() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.cfg");
        let e = load(&missing, true).err().unwrap();
        assert!(e.to_string().contains("nope.cfg"), "{e}");
        let l = load(&missing, false).unwrap();
        assert_eq!(l.config, Config::default());
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("defaults"));
    }

    #[test]
    fn describe_masks_password() {
        let c = ok("pass = hunter2\n").config;
        let d = c.describe();
        assert!(!d.contains("hunter2"));
        assert!(d.contains("pass               = ********"));
        assert!(d.contains("weight.ChallengeSent = 4/10"));
    }
}
