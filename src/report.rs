//! What `ampere status` and `ampere why ADDR` print: from the running daemon's state through
//! the control socket, or from the database alone when no daemon runs. Attacker text (the
//! account) is escaped wherever it is printed.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::addr::net_text;
use crate::ban::Origin;
use crate::bans::Bans;
use crate::clock::{self, format_time};
use crate::config::Config;
use crate::control::proto::Answer;
use crate::engine::Engine;
use crate::log::printable;
use crate::resolver::{self, Named};
use crate::score::Evidence;
use crate::session::Link;
use crate::store::{Record, Store};

/// Security events per second over the last minute: 60 one-second buckets, no allocation.
pub struct EventRate {
    buckets: [u32; 60],
    /// The second (monotonic, since start) the newest bucket stands for.
    newest: u64,
    pub total: u64,
}

impl Default for EventRate {
    fn default() -> Self {
        EventRate {
            buckets: [0; 60],
            newest: 0,
            total: 0,
        }
    }
}

impl EventRate {
    fn advance(&mut self, sec: u64) {
        if sec > self.newest {
            for s in (self.newest + 1)..=sec.min(self.newest + 60) {
                self.buckets[(s % 60) as usize] = 0;
            }
            self.newest = sec;
        }
    }

    pub fn add(&mut self, sec: u64, n: u32) {
        self.advance(sec);
        self.buckets[(sec % 60) as usize] += n;
        self.total += u64::from(n);
    }

    /// Events per second over the 60 s up to `sec`.
    pub fn last_minute(&mut self, sec: u64) -> f64 {
        self.advance(sec);
        f64::from(self.buckets.iter().sum::<u32>()) / 60.0
    }
}

/// The daemon's state that `status` and `why` read.
pub struct Live<'a> {
    pub cfg: &'a Config,
    pub engine: &'a Engine,
    pub link: &'a Link,
    pub bans: &'a Bans,
    pub started: Instant,
    /// Unix time of the start, and of the latest security event.
    pub started_at: i64,
    pub last_event: Option<i64>,
    pub rate: &'a mut EventRate,
    /// The SIP limit in place, as a phrase.
    pub sip_limit: String,
    /// The trusted names and what they resolve to now.
    pub names: &'a [Named],
    /// What the CrowdSec roles did (`crowdsec::Lapi::describe`): lines, or empty.
    pub crowdsec: String,
    /// The PBX's own addresses and links.
    pub own: &'a crate::own::OwnNets,
    /// The log door (`daemon/logdoor.rs`): a line for a person, and `key value` lines.
    pub log_door: (String, String),
    /// The longest the loop worked between two polls since the start.
    pub longest_turn: Duration,
}

/// A trusted name's addresses, or why it has none.
fn addr_list(n: &Named) -> String {
    let mut text = resolver::joined(&n.addrs);
    if n.addrs.is_empty() {
        text.push_str("(no address yet)");
    }
    if n.failing {
        text.push_str(" (the last lookup failed)");
    }
    text
}

fn ago(then: i64, now: i64) -> String {
    let s = (now - then).max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn origins(by: &[(String, i64)]) -> String {
    let total: i64 = by.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = by.iter().map(|(o, n)| format!("{o} {n}")).collect();
    if parts.is_empty() {
        format!("{total} active")
    } else {
        format!("{total} active ({})", parts.join(", "))
    }
}

/// `bans_active N` and one `bans_active_ORIGIN N` line per origin.
fn origin_keys(o: &mut String, by: &[(String, i64)]) {
    let _ = writeln!(o, "bans_active {}", by.iter().map(|(_, n)| n).sum::<i64>());
    for (origin, n) in by {
        let _ = writeln!(o, "bans_active_{origin} {n}");
    }
}

/// One ban as a line: when, what, why, who, until when.
fn ban_line(r: &Record, now: i64) -> String {
    let b = &r.ban;
    let who = match b.origin {
        Origin::Daemon if b.reason == "subnet" => "subnet escalation".to_string(),
        Origin::Daemon => format!("daemon, penalty {}", b.penalty),
        Origin::Manual => "ampere -a".to_string(),
        Origin::Crowdsec => format!("CrowdSec, scenario {}", printable(b.reason.as_bytes())),
    };
    let account = if b.account.is_empty() {
        String::new()
    } else {
        format!(" account `{}`", printable(b.account.as_bytes()))
    };
    let service = if b.service.is_empty() {
        String::new()
    } else {
        format!(" ({})", b.service)
    };
    let state = match (&r.folded_into, r.active, b.expires) {
        (Some(s), _, _) => format!("folded into the subnet ban {s}"),
        (None, true, None) => "permanent".to_string(),
        (None, true, Some(e)) => format!("until {}", format_time(e)),
        (None, false, Some(e)) if e <= now => format!("ended {}", format_time(e)),
        (None, false, _) => "lifted".to_string(),
    };
    let count = match b.evidence {
        Evidence::Strong => format!("ban #{}", b.count),
        Evidence::Weak => "weak evidence, not counted".to_string(),
    };
    format!(
        "{}  {}  {}{service}{account}  [{who}, {count}]  {state}",
        format_time(b.since),
        net_text(&b.net),
        b.reason,
    )
}

/// The status as `key value` lines (`keys`) or for a person.
pub fn status(live: &mut Live, keys: bool) -> String {
    let now = clock::now_epoch();
    let sec = clock::mono_secs(live.started);
    let per_min = live.rate.last_minute(sec);
    let overall = live.rate.total as f64 / sec.max(1) as f64;
    let store = live.bans.store();
    let by_origin = store.active_by_origin().unwrap_or_default();
    let latest = store.latest(10).unwrap_or_default();
    let c = live.bans.counters;
    let ami = live.link.counters();
    let t = live.engine.table();
    let near = live.engine.near_limit(sec, 10);
    let mut o = String::new();
    if keys {
        let _ = writeln!(
            o,
            "running 1\npid {}\nstarted {}",
            std::process::id(),
            live.started_at
        );
        let _ = writeln!(o, "ami_target {}", live.link.target());
        let _ = writeln!(o, "ami_logged_in {}", u8::from(live.link.logged_in()));
        if let Some((banner, since)) = live.link.session() {
            let _ = writeln!(o, "ami_since {since}\nami_banner {banner}");
        }
        let _ = writeln!(
            o,
            "ami_logins {}\nami_reconnects {}\nami_login_failures {}",
            ami.logins,
            ami.logins.saturating_sub(1),
            ami.login_failures
        );
        for n in live.names {
            let _ = writeln!(o, "trust_name {} {}", n.name, addr_list(n));
        }
        let _ = writeln!(o, "last_event {}", live.last_event.unwrap_or(0));
        let _ = writeln!(
            o,
            "events_total {}\nevents_per_second_1m {per_min:.2}\nevents_per_second {overall:.2}",
            live.rate.total
        );
        origin_keys(&mut o, &by_origin);
        let _ = writeln!(
            o,
            "table_hosts {}\ntable_capacity {}\ntable_evictions {}",
            t.len(),
            t.capacity(),
            t.evictions()
        );
        let ec = &live.engine.counters;
        let _ = writeln!(
            o,
            "weak_bans {}\nweak_known_bans {}\nweak_single_events {}\nregistrar_refusals {}\nstale_failures {}\nstale_bans {}",
            ec.weak_bans,
            ec.weak_known_bans,
            ec.weak_single,
            ec.registrar_refusals,
            ec.stale_failures,
            ec.stale_bans
        );
        o.push_str(&live.log_door.1);
        let _ = writeln!(
            o,
            "own_addresses {}\nown_links {}",
            live.own.addrs.len(),
            live.own.links.len()
        );
        let k = live.engine.known();
        let _ = writeln!(
            o,
            "known_rows {}\nknown_trunk_networks {}\nknown_stored {}",
            k.len(),
            k.networks(),
            store.known_count().unwrap_or(-1)
        );
        let _ = writeln!(
            o,
            "last_audit {}\naudits {}\naudit_took_ms {}\naudit_every_s {}\nrepaired {}\nstrays_removed {}\nfirewall_errors {}",
            c.last_audit,
            c.audits,
            c.audit_took_ms,
            c.audit_every_s,
            c.repaired,
            c.strays_removed,
            c.firewall_errors
        );
        let _ = writeln!(
            o,
            "db_bytes {}\ndb_inactive {}\nbans_forgotten {}\nloop_longest_turn_ms {}",
            store.size_on_disk(),
            store.inactive_count().unwrap_or(-1),
            c.forgotten,
            live.longest_turn.as_millis()
        );
        return o;
    }
    let _ = writeln!(
        o,
        "{}: running since {} (pid {})",
        crate::version(),
        format_time(live.started_at),
        std::process::id()
    );
    match (live.link.logged_in(), live.link.session()) {
        (true, Some((banner, since))) => {
            let _ = writeln!(
                o,
                "AMI:      logged in to {} since {} ({banner})",
                live.link.target(),
                format_time(since)
            );
        }
        _ => {
            let (why, next) = live.link.last_failure();
            let wait = next.saturating_duration_since(Instant::now()).as_millis();
            let _ = writeln!(
                o,
                "AMI:      NOT logged in to {}: {}; next attempt in {wait} ms",
                live.link.target(),
                why.unwrap_or("connecting")
            );
        }
    }
    let _ = writeln!(
        o,
        "          last security event {}; {} logins ({} reconnects), {} failed",
        live.last_event.map_or("never".to_string(), |e| ago(e, now)),
        ami.logins,
        ami.logins.saturating_sub(1),
        ami.login_failures
    );
    if !live.names.is_empty() {
        let names: Vec<String> = live
            .names
            .iter()
            .map(|n| format!("{} {}", n.name, addr_list(n)))
            .collect();
        let _ = writeln!(o, "trust:    {}", names.join("; "));
    }
    let _ = writeln!(
        o,
        "events:   {per_min:.1}/s over the last minute, {overall:.1}/s since start ({} in all); the loop's longest turn {} ms",
        live.rate.total,
        live.longest_turn.as_millis()
    );
    let _ = writeln!(
        o,
        "bans:     {}; max_bans {}",
        origins(&by_origin),
        live.cfg.max_bans
    );
    let ec = &live.engine.counters;
    let _ = writeln!(
        o,
        "weak:     {} ban(s) on evidence a forged packet can make (at most {} s; {} of hosts that logged in before, at most {} s), {} single event(s) not banned",
        ec.weak_bans,
        live.cfg.weak_bantime,
        ec.weak_known_bans,
        live.cfg.weak_known_bantime,
        ec.weak_single
    );
    let notes = live.engine.notes();
    let _ = match &notes.latest_refusal {
        None => writeln!(o, "registrar: no refusal after a success"),
        Some(r) => writeln!(
            o,
            "registrar: {} refusal(s) right after a success, not counted (latest: account `{}` from {}: {}, {}); see the AOR's max_contacts and remove_existing",
            notes.refusals,
            r.account,
            r.addr,
            r.acl,
            ago(r.at, now)
        ),
    };
    for s in notes.stale().into_iter().take(5) {
        let _ = writeln!(
            o,
            "stale:    account `{}` fails from {}, where it logged in before: {} time(s) since {} (latest {}), {} ban(s) of at most {} s",
            s.account,
            s.addr,
            s.failures,
            format_time(s.first),
            ago(s.last, now),
            s.bans,
            live.cfg.weak_known_bantime
        );
    }
    o.push_str(&live.log_door.0);
    o.push_str(&live.crowdsec);
    let _ = writeln!(
        o,
        "table:    {} of {} hosts tracked, {} evicted",
        t.len(),
        t.capacity(),
        t.evictions()
    );
    let _ = writeln!(o, "own:      {}", live.own.describe());
    let k = live.engine.known();
    let _ = writeln!(
        o,
        "known:    {} host(s) and account(s) that logged in or are registered (of {} kept{}), {} stored",
        k.len(),
        live.cfg.known_max,
        match k.networks() {
            0 => String::new(),
            n => format!("; {n} trunk network(s)"),
        },
        store.known_count().unwrap_or(-1)
    );
    let _ = writeln!(
        o,
        "database: {} KiB; {} expired ban(s) kept for escalation (at most db_max_inactive {}, each for ban_forget {}), {} forgotten",
        store.size_on_disk() / 1024,
        store.inactive_count().unwrap_or(-1),
        live.cfg.db_max_inactive,
        crate::clock::span(live.cfg.ban_forget),
        c.forgotten
    );
    let _ = writeln!(
        o,
        "firewall: {} `{}`; last audit {}{} ({} audits, {} repaired, {} strays removed, {} errors); {}",
        live.cfg.backend.as_str(),
        live.cfg.chain,
        if c.last_audit == 0 { "not yet".to_string() } else { ago(c.last_audit, now) },
        audit_spacing(&c, live.cfg.audit_interval),
        c.audits,
        c.repaired,
        c.strays_removed,
        c.firewall_errors,
        live.sip_limit
    );
    let active: i64 = by_origin.iter().map(|(_, n)| n).sum();
    if let Some(note) = crate::firewall::slow_note(live.cfg.backend, active) {
        let _ = writeln!(o, "  WARNING: {note}");
    }
    if let Some(tool) = live.bans.firewall().describe() {
        let _ = writeln!(o, "          {tool}");
    }
    for f in live.bans.path_faults() {
        let _ = writeln!(o, "  WARNING: {f}");
    }
    let limit = live.engine.limit();
    let _ = writeln!(
        o,
        "near the limit ({limit}):{}",
        if near.is_empty() { " nobody" } else { "" }
    );
    for (net, p) in near {
        let _ = writeln!(
            o,
            "  {:<40} {p:>4}  ({} to a ban)",
            net_text(&net),
            limit - p
        );
    }
    latest_lines(&mut o, &latest, now);
    o
}

fn latest_lines(o: &mut String, latest: &[Record], now: i64) {
    let _ = writeln!(
        o,
        "last bans:{}",
        if latest.is_empty() { " none" } else { "" }
    );
    for r in latest {
        let _ = writeln!(o, "  {}", ban_line(r, now));
    }
}

/// `status` with no daemon: what the database knows.
pub fn status_offline(cfg: &Config, keys: bool) -> String {
    let now = clock::now_epoch();
    let store = Store::open(&cfg.db);
    let (by_origin, latest) = match &store {
        Ok(s) => (
            s.active_by_origin().unwrap_or_default(),
            s.latest(10).unwrap_or_default(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let mut o = String::new();
    if keys {
        let _ = writeln!(o, "running 0");
        origin_keys(&mut o, &by_origin);
        return o;
    }
    let _ = writeln!(
        o,
        "Ampere is not running (nothing answers at {}).",
        cfg.socket.display()
    );
    match store {
        Ok(_) => {
            let _ = writeln!(o, "database {}: {}", cfg.db.display(), origins(&by_origin));
        }
        Err(e) => {
            let _ = writeln!(o, "database {}: {e}", cfg.db.display());
        }
    }
    latest_lines(&mut o, &latest, now);
    o
}

mod why;
pub use why::why;

/// `why` answered from the daemon's state: with the penalty the engine holds now.
pub fn why_live(live: &Live, text: &str) -> Answer {
    let sec = clock::mono_secs(live.started);
    why(
        live.cfg,
        live.bans.store(),
        live.bans.firewall(),
        Some((live.engine, sec)),
        live.names,
        live.own,
        text,
    )
}

/// A note when the audit comes less often than `audit_interval` (`survey::spaced`).
fn audit_spacing(c: &crate::bans::Counters, interval: u64) -> String {
    if c.audit_every_s > interval {
        format!(
            ", every {} s, not {interval} s: its listing took {:.1} s",
            c.audit_every_s,
            c.audit_took_ms as f64 / 1000.0
        )
    } else {
        String::new()
    }
}
