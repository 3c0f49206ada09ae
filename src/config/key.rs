//! What a config key is: its name, parser, default, how `-t` shows it and when a change
//! takes effect. The rows themselves are in `keys.rs`.

use crate::error::Invalid;
use std::path::PathBuf;

use super::Config;

/// When a changed value takes effect in a running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// At the next SIGHUP.
    Live,
    /// At the next SIGHUP, which also logs in to AMI again.
    Reconnect,
    /// Only after a restart: the daemon keeps the old value and says so by name.
    Restart,
}

/// Where a key is documented: the sample configs' and the man page's sections, in this
/// order (`docs::SECTIONS` has their titles and what they say first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Ami,
    Scoring,
    Trust,
    Bans,
    Firewall,
    Crowdsec,
    Notify,
    Storage,
}

/// One row of a key table: `key!(name, effect, default, example, section, doc, |config,
/// value| set, |config| shown)`.
macro_rules! key {
    ($name:literal, $effect:expr, $default:literal, $example:literal, $section:expr, $doc:literal, |$c:ident, $v:ident| $set:expr, |$s:ident| $show:expr) => {
        Key {
            name: $name,
            effect: $effect,
            default: $default,
            example: $example,
            section: $section,
            #[cfg(not(ampere_lean))]
            doc: $doc,
            secret: false,
            repeat: false,
            set: |$c, _, $v| {
                $set;
                Ok(())
            },
            show: |$s| one($name, $show),
        }
    };
}

pub struct Key {
    /// As written in a file (lowercase); `weight.*` stands for one key per event kind.
    pub name: &'static str,
    pub effect: Effect,
    /// The value a file would write for the default; empty = unset.
    pub default: &'static str,
    /// Another valid value, different from the default (tests, documentation).
    pub example: &'static str,
    /// Where it is documented, and what the documents say of it (the sample configs, the
    /// man page: `docs.rs` writes them from this).
    pub section: Section,
    #[cfg(not(ampere_lean))]
    pub doc: &'static str,
    /// Masked by `-t`.
    pub secret: bool,
    /// May be given many times, each adding a value (`trust`).
    pub repeat: bool,
    /// Parses `value` into the config; gets the key as written, lowercased (`weight.*`).
    pub(super) set: fn(&mut Config, &str, &str) -> Result<(), Invalid>,
    /// The current value(s) as (key, value) pairs a file could contain.
    pub(super) show: fn(&Config) -> Vec<(String, String)>,
}

impl Key {
    pub fn matches(&self, key: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == self.name,
        }
    }

    pub fn values(&self, c: &Config) -> Vec<(String, String)> {
        (self.show)(c)
    }
}

pub(super) fn one(name: &str, v: impl ToString) -> Vec<(String, String)> {
    vec![(name.to_string(), v.to_string())]
}

pub(super) fn path_opt(name: &str, p: &Option<PathBuf>) -> Vec<(String, String)> {
    p.iter()
        .map(|p| (name.to_string(), p.display().to_string()))
        .collect()
}

pub(super) fn list(v: &str) -> Vec<&str> {
    v.split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The known key nearest to an unknown `key` (at most two edits away), for "did you mean".
pub(super) fn closest(key: &str) -> Option<&'static str> {
    super::keys::all()
        .map(|k| k.name.trim_end_matches('*'))
        .map(|name| (edits(key, name), name))
        .filter(|&(d, name)| d <= 2 && d < name.len() / 2 + 1)
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name)
}

/// Levenshtein distance between two short ASCII strings.
fn edits(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
