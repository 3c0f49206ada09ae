//! Which per-source SIP limit the firewall should hold, and putting it there: the blind guard
//! while no AMI session is logged in (Ampere sees no attack then), the flood guard (`flood`)
//! otherwise and also while blind when no blind guard is configured, none after a clean stop.

use ipnet::IpNet;

use crate::config::Config;
use crate::firewall::{Backend, LimitKind, SipLimit};
use crate::{error, info};

pub struct SipGuard {
    blind: Option<SipLimit>,
    flood: Option<SipLimit>,
    /// What was last put up or tried: a failure is logged once per change, not retried in a
    /// loop.
    tried: Option<SipLimit>,
}

impl SipGuard {
    /// `exempt`: what the engine protects (trust, loopback, the AMI host).
    pub fn new(cfg: &Config, exempt: &[IpNet]) -> SipGuard {
        let mut g = SipGuard {
            blind: None,
            flood: None,
            tried: None,
        };
        g.reconfigure(cfg, exempt);
        g
    }

    /// Rates, prefix and exempt networks from a (re)loaded config; the next `sync` puts up
    /// what changed.
    pub fn reconfigure(&mut self, cfg: &Config, exempt: &[IpNet]) {
        let limit = |kind, rate| SipLimit::new(kind, rate, exempt, cfg.ipv6_prefix);
        self.blind = cfg.blind_guard.map(|r| limit(LimitKind::Blind, r));
        self.flood = cfg.flood.map(|r| limit(LimitKind::Flood, r));
    }

    /// The limit wanted now.
    fn wanted(&self, logged_in: bool, stop: bool) -> Option<&SipLimit> {
        match (stop, logged_in) {
            (true, _) => None,
            (false, false) => self.blind.as_ref().or(self.flood.as_ref()),
            (false, true) => self.flood.as_ref(),
        }
    }

    /// What is in place, for `status`.
    pub fn describe(&self) -> String {
        match &self.tried {
            Some(l) => format!("SIP limit: {} {}/s burst {}", l.kind, l.rate, l.burst),
            None => "no SIP limit".to_string(),
        }
    }

    /// Puts up the limit wanted now in place of what is there, if it differs.
    pub fn sync(&mut self, fw: &dyn Backend, logged_in: bool, stop: bool) {
        let want = self.wanted(logged_in, stop);
        if want == self.tried.as_ref() {
            return;
        }
        // How long the firewall took to put it in place: on a loaded machine the command,
        // not Ampere's decision, is what lets a flood through meanwhile (tests/netns/guard.rs).
        let started = std::time::Instant::now();
        let result = fw.limit_sip(want);
        let took = started.elapsed().as_millis();
        let want = want.cloned();
        let old = std::mem::replace(&mut self.tried, want);
        match (result, &self.tried) {
            (Ok(()), Some(l)) => info!(
                "{}: SIP limited to {}/s (burst {}) per untrusted source{} (in place in {took} ms)",
                l.kind,
                l.rate,
                l.burst,
                match l.kind {
                    LimitKind::Blind => " until the login to AMI",
                    LimitKind::Flood => "",
                }
            ),
            (Ok(()), None) => info!("SIP limit lifted (in {took} ms)"),
            (Err(e), Some(l)) => error!("cannot put up the SIP limit ({}): {e}", l.kind),
            (Err(e), None) => error!(
                "cannot take down the SIP limit ({}): {e}",
                old.map_or_else(|| "none".to_string(), |o| o.kind.to_string())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(blind: Option<(u32, u32)>, flood: Option<(u32, u32)>) -> Config {
        Config {
            blind_guard: blind,
            flood,
            ..Config::default()
        }
    }

    fn kind(g: &SipGuard, logged_in: bool, stop: bool) -> Option<(LimitKind, u32)> {
        g.wanted(logged_in, stop).map(|l| (l.kind, l.rate))
    }

    #[test]
    fn the_blind_guard_while_blind_the_flood_guard_otherwise_none_at_stop() {
        let both = SipGuard::new(&cfg(Some((10, 20)), Some((50, 250))), &[]);
        assert_eq!(kind(&both, false, false), Some((LimitKind::Blind, 10)));
        assert_eq!(kind(&both, true, false), Some((LimitKind::Flood, 50)));
        assert_eq!(kind(&both, true, true), None);
        let flood = SipGuard::new(&cfg(None, Some((50, 250))), &[]);
        assert_eq!(kind(&flood, false, false), Some((LimitKind::Flood, 50)));
        let blind = SipGuard::new(&cfg(Some((10, 20)), None), &[]);
        assert_eq!(kind(&blind, true, false), None);
        assert_eq!(
            kind(&SipGuard::new(&cfg(None, None), &[]), false, false),
            None
        );
    }
}
