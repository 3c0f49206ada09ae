//! What the engine counts: security events by service and kind, and what became of them.

use crate::ami::same_name;
use crate::score::EventKind;

/// Distinct service names counted separately; more (there are only a handful in Asterisk)
/// go to `other`.
const MAX_SERVICES: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Security events by service and kind.
    pub events: Vec<(String, [u64; EventKind::ALL.len()])>,
    pub ban_decisions: u64,
    pub protected: u64,
    pub ignored_service: u64,
    pub bad_address: u64,
    /// Messages dropped for a header Ampere reads given twice.
    pub duplicate_headers: u64,
    /// Facts Asterisk reported about registrations and trunks (`facts.rs`).
    pub facts: u64,
    /// Bans on weak evidence (`score::Evidence`), those of hosts that had proved
    /// themselves, and single weak events that reached the limit and banned nothing.
    pub weak_bans: u64,
    pub weak_known_bans: u64,
    pub weak_single: u64,
    /// Registrar refusals that followed a success (free); failures of accounts that had
    /// authenticated from their host (counted apart), and the bans they brought.
    pub registrar_refusals: u64,
    pub stale_failures: u64,
    pub stale_bans: u64,
}

impl Counters {
    pub(super) fn count(&mut self, service: &[u8], kind: EventKind) {
        let i = match self
            .events
            .iter()
            .position(|(s, _)| same_name(s.as_bytes(), service))
        {
            Some(i) => i,
            None => {
                let name = if self.events.len() < MAX_SERVICES {
                    crate::log::printable(service)
                } else {
                    "other".to_string()
                };
                match self.events.iter().position(|(s, _)| *s == name) {
                    Some(i) => i,
                    None => {
                        self.events.push((name, [0; EventKind::ALL.len()]));
                        self.events.len() - 1
                    }
                }
            }
        };
        self.events[i].1[kind.index()] += 1;
    }

    pub fn by_kind(&self) -> [u64; EventKind::ALL.len()] {
        let mut total = [0; EventKind::ALL.len()];
        for (_, by_kind) in &self.events {
            for (t, n) in total.iter_mut().zip(by_kind) {
                *t += n;
            }
        }
        total
    }

    pub fn summary(&self) -> String {
        let kinds: Vec<String> = EventKind::ALL
            .iter()
            .zip(self.by_kind())
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        format!(
            "events: {}; ban decisions {} (on weak evidence {}, of known hosts {}), protected {}, other service {}, bad address {}, duplicate headers {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" ")
            },
            self.ban_decisions,
            self.weak_bans,
            self.weak_known_bans,
            self.protected,
            self.ignored_service,
            self.bad_address,
            self.duplicate_headers
        )
    }
}
