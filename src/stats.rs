//! Counters, as one log line (SIGUSR1) and as a Prometheus text file (`statsfile`),
//! written atomically (temp file + rename) so a scraper never reads half a file.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use crate::score::EventKind;

/// Everything reported, gathered by the daemon: the counters of the engine, the ban
/// pipeline and the AMI link as they keep them, and a few readings.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub engine: crate::engine::Counters,
    pub bans: crate::bans::Counters,
    pub ami: crate::session::LinkCounters,
    pub active_bans: i64,
    /// Bans in the kernel that wait for the database.
    pub unstored: usize,
    pub table_hosts: usize,
    pub table_capacity: usize,
    pub table_evictions: u64,
    pub connected: bool,
    /// Unix time of the latest security event.
    pub last_event: Option<i64>,
    /// CrowdSec's roles, where they are on.
    pub crowdsec: crate::crowdsec::Counters,
}

impl Stats {
    pub fn line(&self) -> String {
        let mut kinds = [0u64; EventKind::ALL.len()];
        for (_, by_kind) in &self.engine.events {
            for (k, n) in kinds.iter_mut().zip(by_kind) {
                *k += n;
            }
        }
        let events: Vec<String> = EventKind::ALL
            .iter()
            .zip(kinds)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        format!(
            "stats: events {}; bans {} unbans {} active {} (on weak evidence {}, of known hosts {}; already banned {}, protected {}, bad address {}, duplicate headers {}, firewall errors {}, database errors {}, waiting for the database {}; audits {} repaired {} strays removed {}; at max_bans: lifted early {} not banned {}); AMI {} logins {} reconnects {} login failures {} connect failures {} dropped lines {} dropped messages {} blind warnings {}; table {}/{} hosts, {} evicted; last event {}",
            if events.is_empty() { "none".to_string() } else { events.join(" ") },
            self.bans.bans,
            self.bans.unbans,
            self.active_bans,
            self.engine.weak_bans,
            self.engine.weak_known_bans,
            self.bans.already_banned,
            self.engine.protected,
            self.engine.bad_address,
            self.engine.duplicate_headers,
            self.bans.firewall_errors,
            self.bans.store_errors,
            self.unstored,
            self.bans.audits,
            self.bans.repaired,
            self.bans.strays_removed,
            self.bans.made_room,
            self.bans.refused,
            if self.connected { "connected," } else { "disconnected," },
            self.ami.logins,
            self.ami.logins.saturating_sub(1),
            self.ami.login_failures,
            self.ami.connect_failures,
            self.ami.dropped_lines,
            self.ami.dropped_messages,
            self.ami.blind_warnings,
            self.table_hosts,
            self.table_capacity,
            self.table_evictions,
            self.last_event.map_or_else(|| "never".to_string(), crate::clock::format_time)
        )
    }

    pub fn prometheus(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(
                o,
                "# HELP ampere_{name} {help}\n# TYPE ampere_{name} {kind}"
            );
            for (labels, v) in samples {
                let _ = writeln!(o, "ampere_{name}{labels} {v}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        let mut ev = Vec::new();
        for (service, by_kind) in &self.engine.events {
            for (k, n) in EventKind::ALL.iter().zip(by_kind) {
                if *n > 0 {
                    ev.push((
                        format!("{{event=\"{}\",service=\"{}\"}}", k.name(), label(service)),
                        n.to_string(),
                    ));
                }
            }
        }
        metric(
            "events_total",
            "counter",
            "Security events seen, by event and service.",
            &ev,
        );
        metric(
            "bans_total",
            "counter",
            "Bans applied.",
            &plain(self.bans.bans.to_string()),
        );
        metric(
            "unbans_total",
            "counter",
            "Bans lifted (expired).",
            &plain(self.bans.unbans.to_string()),
        );
        metric(
            "active_bans",
            "gauge",
            "Bans in force now.",
            &plain(self.active_bans.to_string()),
        );
        metric(
            "protected_events_total",
            "counter",
            "Events from trusted or local hosts.",
            &plain(self.engine.protected.to_string()),
        );
        metric(
            "weak_evidence_total",
            "counter",
            "Hosts that reached the limit on evidence a forged packet can make, by what came of it: a temporary ban, a short one (the host had logged in), none (one event).",
            &[
                ("{what=\"banned\"}".to_string(), (self.engine.weak_bans - self.engine.weak_known_bans).to_string()),
                ("{what=\"banned_known\"}".to_string(), self.engine.weak_known_bans.to_string()),
                ("{what=\"single_event\"}".to_string(), self.engine.weak_single.to_string()),
            ],
        );
        metric(
            "firewall_errors_total",
            "counter",
            "Failed firewall commands.",
            &plain(self.bans.firewall_errors.to_string()),
        );
        metric(
            "table_hosts",
            "gauge",
            "Hosts in the penalty table.",
            &plain(self.table_hosts.to_string()),
        );
        metric(
            "table_capacity",
            "gauge",
            "Size of the penalty table.",
            &plain(self.table_capacity.to_string()),
        );
        metric(
            "table_evictions_total",
            "counter",
            "Hosts forgotten because the table was full.",
            &plain(self.table_evictions.to_string()),
        );
        metric(
            "ami_connected",
            "gauge",
            "1 while logged in to AMI.",
            &plain(u8::from(self.connected).to_string()),
        );
        metric(
            "reconnects_total",
            "counter",
            "AMI logins after the first.",
            &plain(self.ami.logins.saturating_sub(1).to_string()),
        );
        metric(
            "login_failures_total",
            "counter",
            "Refused AMI logins.",
            &plain(self.ami.login_failures.to_string()),
        );
        metric(
            "dropped_events_total",
            "counter",
            "Security events not scored, by why: a RemoteAddress that is no address, a header Ampere reads given twice.",
            &[
                ("{why=\"bad_address\"}".to_string(), self.engine.bad_address.to_string()),
                ("{why=\"duplicate_header\"}".to_string(), self.engine.duplicate_headers.to_string()),
            ],
        );
        metric(
            "audit_repairs_total",
            "counter",
            "Kernel entries the audit fixed: bans put back, entries without a ban removed.",
            &[
                (
                    "{what=\"put_back\"}".to_string(),
                    self.bans.repaired.to_string(),
                ),
                (
                    "{what=\"removed\"}".to_string(),
                    self.bans.strays_removed.to_string(),
                ),
            ],
        );
        metric(
            "max_bans_total",
            "counter",
            "At the max_bans ceiling: temporary bans lifted early to make room, new bans refused because every ban was permanent.",
            &[
                ("{what=\"made_room\"}".to_string(), self.bans.made_room.to_string()),
                ("{what=\"refused\"}".to_string(), self.bans.refused.to_string()),
            ],
        );
        metric(
            "store_errors_total",
            "counter",
            "Failed database writes.",
            &plain(self.bans.store_errors.to_string()),
        );
        metric(
            "bans_unstored",
            "gauge",
            "Bans in the kernel that wait for the database to take writes again.",
            &plain(self.unstored.to_string()),
        );
        metric(
            "bans_unstored_dropped_total",
            "counter",
            "Bans made while the database was down beyond what memory keeps (the next audit after it adopts them).",
            &plain(self.bans.unstored_dropped.to_string()),
        );
        metric(
            "ami_dropped_total",
            "counter",
            "AMI lines and messages dropped for their size, by what.",
            &[
                (
                    "{what=\"line\"}".to_string(),
                    self.ami.dropped_lines.to_string(),
                ),
                (
                    "{what=\"message\"}".to_string(),
                    self.ami.dropped_messages.to_string(),
                ),
            ],
        );
        metric(
            "ami_blind_warnings_total",
            "counter",
            "Times a logged-in AMI session delivered no security event (check read = security).",
            &plain(self.ami.blind_warnings.to_string()),
        );
        metric(
            "last_event_timestamp_seconds",
            "gauge",
            "Unix time of the latest security event (0 = none yet).",
            &plain(self.last_event.unwrap_or(0).to_string()),
        );
        let pairs = |v: &[(&str, u64)], key: &str| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, n)| (format!("{{{key}=\"{k}\"}}"), n.to_string()))
                .collect()
        };
        if let Some(c) = &self.crowdsec.pull {
            metric(
                "crowdsec_pulls_total",
                "counter",
                "Pulls of CrowdSec's decision stream, by result.",
                &pairs(&[("ok", c.pulls), ("failed", c.failures)], "result"),
            );
            metric(
                "crowdsec_decisions_total",
                "counter",
                "CrowdSec decisions, by what became of them.",
                &pairs(
                    &[
                        ("banned", c.banned),
                        ("lifted", c.lifted),
                        ("refused", c.refused),
                        ("skipped", c.skipped),
                        ("over_max", c.over_max),
                    ],
                    "what",
                ),
            );
            metric(
                "crowdsec_last_pull_timestamp_seconds",
                "gauge",
                "Unix time of the last complete pull (0 = none yet).",
                &plain(c.last_ok.to_string()),
            );
        }
        if let Some((c, queued)) = &self.crowdsec.push {
            metric(
                "crowdsec_alerts_total",
                "counter",
                "Bans pushed to CrowdSec as alerts, by what became of them.",
                &pairs(
                    &[
                        ("pushed", c.pushed),
                        ("dropped", c.dropped),
                        ("rejected", c.rejected),
                    ],
                    "what",
                ),
            );
            metric(
                "crowdsec_alerts_queued",
                "gauge",
                "Alerts waiting for LAPI.",
                &plain(queued.to_string()),
            );
            metric(
                "crowdsec_push_failures_total",
                "counter",
                "Failed exchanges with LAPI as a watcher (logins and pushes).",
                &plain(c.failures.to_string()),
            );
        }
        o
    }
}

/// Service names come from Asterisk, but escape them for the label anyway.
fn label(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect()
}

/// Writes `text` to `path` via a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_and_line() {
        let mut by_kind = [0u64; EventKind::ALL.len()];
        by_kind[EventKind::ChallengeResponseFailed.index()] = 7;
        let s = Stats {
            engine: crate::engine::Counters {
                events: vec![("PJSIP".into(), by_kind), ("we\"ird}".into(), by_kind)],
                ..Default::default()
            },
            bans: crate::bans::Counters {
                bans: 2,
                unbans: 1,
                ..Default::default()
            },
            ami: crate::session::LinkCounters {
                logins: 3,
                dropped_lines: 4,
                dropped_messages: 1,
                ..Default::default()
            },
            active_bans: 1,
            connected: true,
            last_event: Some(1_795_423_282),
            ..Stats::default()
        };
        let p = s.prometheus();
        assert!(p.contains("# TYPE ampere_events_total counter\n"));
        assert!(p.contains(
            "ampere_events_total{event=\"ChallengeResponseFailed\",service=\"PJSIP\"} 7\n"
        ));
        assert!(p.contains("service=\"weird\""));
        assert!(p.contains("ampere_bans_total 2\n"));
        assert!(p.contains("ampere_active_bans 1\n"));
        assert!(p.contains("ampere_reconnects_total 2\n"));
        assert!(p.contains("ampere_last_event_timestamp_seconds 1795423282\n"));
        assert!(
            p.contains("ampere_ami_dropped_total{what=\"line\"} 4\n"),
            "{p}"
        );
        assert!(
            p.contains("ampere_ami_dropped_total{what=\"message\"} 1\n"),
            "{p}"
        );
        let l = s.line();
        assert!(l.contains("events ChallengeResponseFailed=14;"), "{l}");
        assert!(l.contains("bans 2 unbans 1 active 1"), "{l}");
        assert!(l.contains("dropped lines 4 dropped messages 1"), "{l}");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ampere.prom");
        write_atomic(&p, "a 1\n").unwrap();
        write_atomic(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        assert!(!dir.path().join("ampere.prom.tmp").exists());
    }
}
