//! The sample configs and the man page's CONFIGURATION section, written from the key table
//! (each key's section, default and `doc`): a new key is one row, and every document that
//! lists keys follows.

use super::{commented, config_weights, man_kinds, COMMENT_AT};
use crate::config::{all_keys, Key, Section};

/// Each section's title, and what its documents say before its keys.
pub const SECTIONS: [(Section, &str, &str); 8] = [
    (
        Section::Ami,
        "Asterisk Manager Interface (see manager.conf in the README)",
        "",
    ),
    (Section::Scoring, "Scoring", ""),
    (
        Section::Trust,
        "Trusted networks",
        "Loopback, the AMI host and the PBX's own addresses are always protected. Put your own office and VPN networks here.",
    ),
    (Section::Bans, "Ban lifetime", ""),
    (Section::Firewall, "Firewall", ""),
    (
        Section::Crowdsec,
        "Sharing bans with CrowdSec (doc/crowdsec.md)",
        "",
    ),
    (Section::Notify, "Notifications and monitoring", ""),
    (Section::Storage, "Storage and logging", ""),
];

/// What a packaged config sets, and why.
pub struct Profile {
    pub file: &'static str,
    /// Keys set (not commented), with their values.
    pub settings: &'static [(&'static str, &'static str)],
    /// A paragraph at the head of a section.
    pub notes: &'static [(Section, &'static str)],
}

const HUMANE: &str = "This file, as the package installs it, starts humane: the first ban of an address lasts an hour, each repeat ban twice as long, and the 4th is permanent. A phone with a mistyped or changed password (or the office behind its NAT) is back within the hour instead of locked out for good, while an attacker that comes back is banned for good at its 4th ban. Without these three lines every ban is permanent, as with the original Ampere.";

pub const PROFILES: [Profile; 2] = [
    Profile {
        file: "etc/ampere.cfg",
        settings: &[
            ("bantime", "1h"),
            ("bantime_factor", "2"),
            ("permanent_after", "4"),
        ],
        notes: &[(Section::Bans, HUMANE)],
    },
    Profile {
        file: "cross/openwrt/ampere.cfg",
        settings: &[
            ("bantime", "1h"),
            ("bantime_factor", "2"),
            ("permanent_after", "4"),
            ("backend", "nft"),
            ("nft_interactive", "no"),
            ("db", "/etc/ampere/ampere.db"),
            ("db_max_inactive", "10000"),
            ("ban_forget", "90d"),
        ],
        notes: &[
            (Section::Bans, HUMANE),
            (
                Section::Firewall,
                "OpenWrt 22.03 and later run fw4 on nftables, without iptables: Ampere keeps a table of its own (`inet ampere`, input hook at priority -10) that no fw4 reload touches. OpenWrt's nft is built without its interactive mode, so each batch of bans execs nft.",
            ),
            (
                Section::Storage,
                "/var is a RAM disk on OpenWrt: the bans are kept on flash so that a reboot loses none. Bans are rare writes (one transaction per burst), so flash wear is not a concern. The expired bans kept for escalation are bounded to fit a router's flash: 10,000 rows (about 1.7 MB) and 90 days.",
            ),
        ],
    },
];

/// The keys of `section`, in the table's order.
fn keys_of(section: Section) -> impl Iterator<Item = &'static Key> {
    all_keys().filter(move |k| k.section == section)
}

/// `text` as comment lines of at most 92 columns.
fn paragraph(text: &str) -> String {
    let mut o = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 92 {
            o.push_str(&line);
            o.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    o.push_str(&line);
    o.push('\n');
    o
}

/// What a file shows for a key it does not set: its default, or an example where it has
/// none.
fn shown(k: &Key) -> &'static str {
    if k.default.is_empty() {
        k.example
    } else {
        k.default
    }
}

/// The body of a sample config: every section, each key with its default and `doc`, the
/// profile's settings and notes.
pub fn sample_config(p: &Profile) -> String {
    let mut o = String::new();
    for (section, title, intro) in SECTIONS {
        let rule = "-".repeat(92usize.saturating_sub(title.len() + 7));
        o.push_str(&format!("\n# --- {title} {rule}\n"));
        if !intro.is_empty() {
            o.push_str(&paragraph(intro));
        }
        for (_, note) in p.notes.iter().filter(|(s, _)| *s == section) {
            o.push_str(&paragraph(note));
        }
        for k in keys_of(section) {
            if k.name == "weight.*" {
                o.push_str(&paragraph(k.doc));
                o.push_str(&config_weights());
                continue;
            }
            match p.settings.iter().find(|(n, _)| *n == k.name) {
                Some((_, v)) => {
                    let doc = format!("{} Default: {}.", k.doc, shown(k));
                    let line = commented(&format!("{} = {v}", k.name), &doc, COMMENT_AT);
                    o.push_str(line.strip_prefix("# ").unwrap_or(&line));
                }
                None => o.push_str(&commented(
                    &format!("{} = {}", k.name, shown(k)),
                    k.doc,
                    COMMENT_AT,
                )),
            }
        }
    }
    o
}

/// Text for a man page: backslashes escaped, a leading dot or quote defused.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The man page's CONFIGURATION section: the syntax, then each section and its keys.
pub fn man_configuration() -> String {
    let mut o = String::from(
        ".I key\n=\n.I value\nlines;\n.BR # \" and \" ;\nstart a comment at the beginning of a line or after white space; a value may be\ndouble-quoted.\nKeys are case-insensitive; every key is optional.\n",
    );
    for (section, title, intro) in SECTIONS {
        o.push_str(&format!(".SS {}\n", roff(title)));
        if !intro.is_empty() {
            o.push_str(&roff(intro));
            o.push('\n');
        }
        for k in keys_of(section) {
            if k.name == "weight.*" {
                o.push_str(&format!(".TP\n.BI weight. Event\n{}\n", roff(k.doc)));
                o.push_str("The kinds, with their defaults:\n");
                o.push_str(&man_kinds());
                continue;
            }
            let default = if k.default.is_empty() {
                "none".to_string()
            } else {
                k.default.to_string()
            };
            o.push_str(&format!(
                ".TP\n.B {}\n{}\nDefault: {}.\n",
                k.name,
                roff(k.doc),
                roff(&default)
            ));
        }
    }
    o
}

/// The configuration reference in Markdown (doc/configuration.md): each section, then a
/// table of its keys with default, when a change takes effect, and what it does.
pub fn markdown_configuration() -> String {
    let cell = |t: &str| t.replace('|', "\\|");
    let mut o = String::new();
    for (section, title, intro) in SECTIONS {
        o.push_str(&format!("\n## {title}\n\n"));
        if !intro.is_empty() {
            o.push_str(&format!("{intro}\n\n"));
        }
        o.push_str("| key | default | takes effect | what it does |\n| --- | --- | --- | --- |\n");
        for k in keys_of(section) {
            let default = if k.default.is_empty() {
                "(none)".to_string()
            } else {
                format!("`{}`", k.default)
            };
            let effect = match k.effect {
                crate::config::Effect::Live => "at SIGHUP",
                crate::config::Effect::Reconnect => "at SIGHUP (a new AMI login)",
                crate::config::Effect::Restart => "at a restart",
            };
            o.push_str(&format!(
                "| `{}` | {default} | {effect} | {} |\n",
                k.name,
                cell(k.doc)
            ));
        }
    }
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_one_section_and_every_section_named() {
        for k in all_keys() {
            assert!(
                SECTIONS.iter().any(|(s, _, _)| *s == k.section),
                "{}",
                k.name
            );
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        }
        for p in &PROFILES {
            for (n, v) in p.settings {
                crate::config::parse(format!("{n} = {v}\n").as_bytes(), p.file)
                    .unwrap_or_else(|e| panic!("{}: {n} = {v}: {e}", p.file));
            }
        }
    }

    #[test]
    fn a_set_key_is_a_setting_and_the_others_comments() {
        let text = sample_config(&PROFILES[0]);
        assert!(
            text.lines().any(|l| l.starts_with("bantime = 1h ")),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with("# bantime_max = 0 ")),
            "{text}"
        );
        assert!(text.contains("# weight.ChallengeSent = 4/10"));
        // Every line a config file can read: a comment, or a setting the parser takes.
        let parsed = crate::config::parse(text.as_bytes(), "t").unwrap().config;
        assert_eq!(parsed.bantime, 3600);
    }
}
