//! `ampere.cfg`: `key = value` lines, compatible with the original C Ampere's files. The keys
//! themselves, with their defaults and parsers, are the table in `keys.rs`.
//!
//! Every problem is reported with file, line and the offending text. An invalid `trust` line is
//! an error, never skipped: a skipped trust line would lock the admin out.

#[macro_use]
mod key;
mod crowdsec;
mod keys;
mod kinds;
mod value;

use crate::error::Invalid;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use crowdsec::Crowdsec;
pub use key::{Effect, Key, Section};
pub use keys::all as all_keys;
pub use kinds::{BackendKind, RuleTarget, TrustName};

use crate::log;
use crate::score::Weights;

pub const DEFAULT_PATH: &str = "/etc/ampere/ampere.cfg";

/// A config file larger than this is refused unread (`-c /dev/zero` must not exhaust memory).
const MAX_FILE: u64 = 1 << 20;
/// A longer line is refused without echoing it.
const MAX_LINE: usize = 4096;

/// The settings; what each one means is in `etc/ampere.cfg`, its default in `keys.rs`.
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
    /// The line of each `trust` entry in `source` (0: not from a file), for `why`.
    pub trust_lines: Vec<usize>,
    /// `trust = NAME`: host names whose addresses are trusted, resolved by the daemon at
    /// start and every `trust_refresh` seconds (`resolver`).
    pub trust_names: Vec<TrustName>,
    pub trust_refresh: u64,
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
    /// Most active bans the daemon keeps (`bans/ceiling.rs`); 0 = no ceiling.
    pub max_bans: usize,
    pub onban: Option<PathBuf>,
    pub onunban: Option<PathBuf>,
    pub hook_timeout: u64,
    pub statsfile: Option<PathBuf>,
    /// The control socket (`ampere status`, `ampere why`): a Unix socket, never on the network.
    pub socket: PathBuf,
    pub stats_interval: u64,
    pub log: Option<log::Target>,
    pub services: Vec<String>,
    pub findtime: u64,
    /// How wide a network one penalty and one ban cover (`ipv4_prefix`, `ipv6_prefix`).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// This many distinct daemon bans inside one `subnet_v4`/`subnet_v6` network within
    /// `findtime` ban that network (`bans/subnet.rs`); 0 = off.
    pub subnet_after: usize,
    pub subnet_v4: u8,
    pub subnet_v6: u8,
    pub table_size: usize,
    /// Rows of the memory of known hosts (host and account, `known.rs`) at most, and how
    /// long one is kept without being seen again (seconds).
    pub known_max: usize,
    pub known_forget: u64,
    pub db_max_inactive: usize,
    pub nft_interactive: bool,
    pub ban_forget: u64,
    /// Asterisk's log, followed by the log door (`logdoor.rs`); None: off.
    pub asterisk_log: Option<PathBuf>,
    /// The longest ban on weak evidence (`score::Evidence`), and of a host that had proved
    /// itself.
    pub weak_bantime: u64,
    pub weak_known_bantime: u64,
    /// What the failures of an account that authenticated from its host before may add up
    /// to before a short ban (a device with an old password).
    pub stale_password_limit: u32,
    pub connect_timeout: u64,
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub reconnect_min: u64,
    pub reconnect_max: u64,
    pub weights: Weights,
    /// An InvalidAccountID from a host that never logged in bans at once.
    pub ban_unknown_account: bool,
    /// While Ampere is not logged in to AMI (blind): per-source packets/s and burst allowed
    /// on the SIP ports for untrusted sources; None = off.
    pub blind_guard: Option<(u32, u32)>,
    /// Always (while logged in, and while blind without a `blind_guard`): per-source
    /// packets/s and burst on the SIP ports for untrusted sources; None = off.
    pub flood: Option<(u32, u32)>,
    /// Seconds between audits of the kernel against the database.
    pub audit_interval: u64,
    /// CrowdSec's Local API (`crowdsec.rs`).
    pub crowdsec: Crowdsec,
}

impl Config {
    /// The shape of a config with nothing set; `Default` fills it from the key table.
    fn blank() -> Config {
        Config {
            source: "(defaults)".into(),
            host: String::new(),
            port: 0,
            user: String::new(),
            pass: String::new(),
            loyalty: 0,
            chain: String::new(),
            trust: Vec::new(),
            trust_lines: Vec::new(),
            trust_names: Vec::new(),
            trust_refresh: 0,
            db: PathBuf::new(),
            iptables: PathBuf::new(),
            ip6tables: PathBuf::new(),
            iptables_restore: PathBuf::new(),
            ip6tables_restore: PathBuf::new(),
            target: RuleTarget::Drop,
            ipv6: false,
            backend: BackendKind::Iptables,
            ipset: PathBuf::new(),
            nft: PathBuf::new(),
            maxelem: 0,
            ports: Vec::new(),
            bantime: 0,
            bantime_factor: 0.0,
            bantime_max: 0,
            permanent_after: 0,
            max_bans: 0,
            onban: None,
            onunban: None,
            hook_timeout: 0,
            statsfile: None,
            socket: PathBuf::new(),
            stats_interval: 0,
            log: None,
            services: Vec::new(),
            findtime: 0,
            ipv4_prefix: 32,
            ipv6_prefix: 128,
            subnet_after: 0,
            subnet_v4: 24,
            subnet_v6: 48,
            table_size: 0,
            known_max: 0,
            known_forget: 0,
            db_max_inactive: 0,
            nft_interactive: false,
            ban_forget: 0,
            asterisk_log: None,
            weak_bantime: 0,
            weak_known_bantime: 0,
            stale_password_limit: 0,
            connect_timeout: 0,
            ping_interval: 0,
            ping_timeout: 0,
            reconnect_min: 0,
            reconnect_max: 0,
            weights: Weights::default(),
            ban_unknown_account: false,
            blind_guard: None,
            flood: None,
            audit_interval: 0,
            crowdsec: Crowdsec::blank(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        let mut c = Config::blank();
        for k in all_keys().filter(|k| !k.default.is_empty()) {
            (k.set)(&mut c, k.name, k.default).expect("the key table's defaults are valid");
        }
        c
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
    match read_bounded(path) {
        Ok(bytes) if bytes.len() as u64 > MAX_FILE => Err(ConfigError {
            file,
            line: 0,
            msg: format!("larger than {} KiB: not a config file", MAX_FILE / 1024),
        }),
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

/// At most `MAX_FILE` + 1 bytes of the file, so that a larger one is recognised.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn parse(bytes: &[u8], file: &str) -> Result<Loaded, ConfigError> {
    let mut config = Config {
        source: file.to_string(),
        ..Config::default()
    };
    let mut warnings = Vec::new();
    // Where each key was last set, for the checks that compare keys.
    let mut lines: HashMap<&'static str, usize> = HashMap::new();
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (idx, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = idx + 1;
        let err = |msg: String| ConfigError {
            file: file.to_string(),
            line,
            msg,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE {
            return Err(err(format!("line longer than {MAX_LINE} bytes")));
        }
        let text = std::str::from_utf8(raw)
            .map_err(|_| err(format!("not valid UTF-8: `{}`", log::printable(raw))))?;
        let Some((key, value)) = split_line(text).map_err(|e| err(e.0))? else {
            continue;
        };
        let lower = key.to_ascii_lowercase();
        match keys::find(&lower) {
            Some(k) => {
                (k.set)(&mut config, &lower, &value).map_err(|msg| err(format!("{key}: {msg}")))?;
                lines.insert(k.name, line);
                config.trust_lines.resize(config.trust.len(), line);
                for n in config.trust_names.iter_mut().filter(|n| n.line == 0) {
                    n.line = line;
                }
            }
            None => warnings.push(match key::closest(&lower) {
                Some(near) => {
                    format!("{file}:{line}: unknown key `{key}` (ignored); did you mean `{near}`?")
                }
                None => format!("{file}:{line}: unknown key `{key}` (ignored)"),
            }),
        }
    }
    if let Err((key, msg)) = config.crowdsec.check() {
        let line = lines.get(key).copied().unwrap_or(0);
        warnings.push(format!("{file}:{line}: {msg}"));
    }
    check(&config, &lines).map_err(|(line, msg)| ConfigError {
        file: file.to_string(),
        line,
        msg,
    })?;
    Ok(Loaded { config, warnings })
}

/// Checks that compare keys, run once the whole file is read (so that the order of lines
/// never matters). The error names the line of the key that must change.
fn check(c: &Config, lines: &HashMap<&'static str, usize>) -> Result<(), (usize, String)> {
    if c.reconnect_min > c.reconnect_max {
        let line = lines
            .get("reconnect_min")
            .or_else(|| lines.get("reconnect_max"))
            .copied()
            .unwrap_or(0);
        return Err((
            line,
            format!(
                "reconnect_min ({}) is above reconnect_max ({})",
                c.reconnect_min, c.reconnect_max
            ),
        ));
    }
    Ok(())
}

/// Splits one line into a key (as written) and its value; `None` for blank and comment lines.
/// A comment starts at `#` or `;` at the start of a line or after white space, so that
/// `pass = abc#1` keeps its `#`; a double-quoted value may contain anything but `"`.
fn split_line(text: &str) -> Result<Option<(String, String)>, Invalid> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        return Ok(None);
    }
    let Some((key, rest)) = t.split_once('=') else {
        return Err(format!("expected `key = value`, found `{t}`").into());
    };
    let key = key.trim().to_string();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("expected `key = value`, found `{t}`").into());
    }
    let rest = rest.trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        let Some((inner, after)) = quoted.split_once('"') else {
            return Err(format!("unterminated quote in `{t}`").into());
        };
        let after = after.trim();
        if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
            return Err(format!("text after the closing quote in `{t}`").into());
        }
        inner.to_string()
    } else {
        strip_comment(rest).trim_end().to_string()
    };
    if value.is_empty() {
        return Err(format!("`{key}` has no value").into());
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

/// What a reload changed, by when it takes effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys whose new value is in force now.
    pub live: Vec<&'static str>,
    /// Keys that need a new AMI login (applied too).
    pub reconnect: Vec<&'static str>,
    /// Keys kept at their old value until a restart.
    pub kept: Vec<&'static str>,
}

impl Config {
    /// The effective settings, one per line, for `ampere -t`; the AMI secret is masked.
    pub fn describe(&self) -> String {
        let mut out = format!("{:<18} = {}\n", "# from", self.source);
        for k in all_keys() {
            for (name, value) in k.values(self) {
                let value = if k.secret && !value.is_empty() {
                    "*".repeat(8)
                } else {
                    value
                };
                out.push_str(&format!("{name:<18} = {value}\n"));
            }
            if !k.repeat && k.values(self).is_empty() {
                out.push_str(&format!("{:<18} = (none)\n", k.name));
            }
        }
        out
    }

    /// Takes over a reloaded config: restart-only keys keep their running value in `new`,
    /// and the result says which keys changed, by effect.
    pub fn reload_into(&self, new: &mut Config) -> Changes {
        let mut changes = Changes::default();
        for k in all_keys() {
            let old_values = k.values(self);
            if old_values == k.values(new) {
                continue;
            }
            match k.effect {
                Effect::Live => changes.live.push(k.name),
                Effect::Reconnect => changes.reconnect.push(k.name),
                Effect::Restart => {
                    changes.kept.push(k.name);
                    for (name, v) in &old_values {
                        (k.set)(new, name, v).expect("a running value parses again");
                    }
                }
            }
        }
        changes
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

    /// Whether bans of `net`'s family are made at all (`ipv6 = no` turns IPv6 off).
    pub fn bans_family_of(&self, net: &IpNet) -> bool {
        self.ipv6 || !crate::addr::is_v6(net)
    }
}

#[cfg(test)]
mod tests;
