//! Subnet escalation: three bans inside one /24 within findtime ban the /24, which takes
//! their place in the kernel.

use super::*;

impl Rig {
    /// `flush` and then `escalate`, as the daemon runs them; `protected` are trusted (the
    /// admission check the engine holds). Returns what escalation banned and folded.
    fn escalated(
        &mut self,
        addrs: &[&str],
        now: i64,
        protected: &[&str],
    ) -> (Vec<String>, Vec<String>) {
        for a in addrs {
            self.bans.queue(ban_at(a, now));
        }
        let cfg = self.cfg.clone();
        let banned = self.bans.flush(&cfg, || now).banned;
        let mut trusting = cfg.clone();
        trusting.trust = protected.iter().map(|p| parse_net(p).unwrap()).collect();
        let admission = crate::admission::Admission::new(&trusting, &[]);
        let out = self.bans.escalate(&cfg, &banned, &admission);
        (
            out.banned.iter().map(|b| net_text(&b.net)).collect(),
            out.lifted.iter().map(|(n, _)| net_text(n)).collect(),
        )
    }
}

#[test]
fn three_bans_in_a_24_become_one_subnet_ban_and_other_24s_are_untouched() {
    let mut r = rig("bantime = 600\n");
    assert_eq!(
        r.escalated(&["203.0.113.1", "198.51.100.1"], T0, &[])
            .0
            .len(),
        0
    );
    assert_eq!(r.escalated(&["203.0.113.2"], T0 + 10, &[]).0.len(), 0);
    let (banned, folded) = r.escalated(&["203.0.113.3"], T0 + 20, &[]);
    assert_eq!(banned, ["203.0.113.0/24"]);
    assert_eq!(folded, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
    assert_eq!(r.held(), ["198.51.100.1", "203.0.113.0/24"]);
    assert_eq!(r.stored(), r.held());
    let subnet = parse_net("203.0.113.0/24").unwrap();
    assert_eq!(r.bans.store.folded_count(&subnet).unwrap(), 3);
    // Another attacker of that /24 needs no entry of its own.
    assert!(r.flush(&["203.0.113.77"], T0 + 30).is_empty());
    assert_eq!(r.held(), ["198.51.100.1", "203.0.113.0/24"]);
    // The subnet's second ban lasts twice as long, like any ban's.
    r.timers(T0 + 20 + 600);
    assert!(r.held().is_empty());
    r.escalated(&["203.0.113.4", "203.0.113.5"], T0 + 700, &[]);
    let (banned, _) = r.escalated(&["203.0.113.6"], T0 + 701, &[]);
    assert_eq!(banned, ["203.0.113.0/24"]);
    let b = r.bans.store.active().unwrap();
    let s = b.iter().find(|b| b.net == subnet).unwrap();
    assert_eq!((s.count, s.expires), (2, Some(T0 + 701 + 1200)));
}

#[test]
fn no_subnet_over_a_protected_address_or_beyond_findtime() {
    let mut r = rig("findtime = 100\n");
    let ips = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    for (i, a) in ips.iter().enumerate() {
        let (banned, _) = r.escalated(&[a], T0 + i as i64, &["203.0.113.200"]);
        assert!(banned.is_empty());
    }
    assert_eq!(r.held(), ips);
    // Three bans of one /24, each more than findtime after the one before.
    let mut r = rig("findtime = 100\n");
    for (i, a) in ips.iter().enumerate() {
        let (banned, _) = r.escalated(&[a], T0 + 101 * i as i64, &[]);
        assert!(banned.is_empty());
    }
    // IPv6 prefixes escalate to their /48; LAN addresses never do.
    let mut r = rig("");
    r.escalated(
        &[
            "2001:db8:5:1::/64",
            "2001:db8:5:2::/64",
            "10.0.0.1",
            "10.0.0.2",
        ],
        T0,
        &[],
    );
    let (banned, folded) = r.escalated(&["2001:db8:5:3::/64", "10.0.0.3"], T0 + 1, &[]);
    assert_eq!(banned, ["2001:db8:5::/48"]);
    assert_eq!(folded.len(), 3);
    assert_eq!(
        r.held(),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8:5::/48"]
    );
}

#[test]
fn a_member_banned_for_longer_than_its_subnet_keeps_its_own_ban() {
    let mut r = rig("bantime = 600\n");
    r.escalated(&["203.0.113.1"], T0, &[]);
    r.bans
        .store
        .make_permanent(&[parse_net("203.0.113.1").unwrap()])
        .unwrap();
    r.escalated(&["203.0.113.2"], T0 + 1, &[]);
    let (banned, folded) = r.escalated(&["203.0.113.3"], T0 + 2, &[]);
    assert_eq!(banned, ["203.0.113.0/24"]);
    assert_eq!(folded, ["203.0.113.2", "203.0.113.3"]);
    assert_eq!(r.stored(), ["203.0.113.0/24", "203.0.113.1"]);
}

#[path = "../../../tests/common/strategies.rs"]
mod strategies;

use proptest::prelude::*;

use crate::engine::{Engine, Verdict};
use crate::event::SecurityEvent;
use crate::score::EventKind;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The daemon's path from verdict to kernel, prefixes and subnet escalation together:
    /// whatever the widths and the trusted networks, nothing the kernel holds ever takes in
    /// a trusted address, loopback or the AMI host.
    #[test]
    fn no_kernel_entry_ever_takes_in_a_protected_address(
        events in prop::collection::vec(
            (prop::sample::select(EventKind::ALL.to_vec()), strategies::near_addr(), 0i64..3000),
            1..200,
        ),
        trust in prop::collection::vec(strategies::trust_net(), 0..4),
        v4_len in 16u8..=32,
        v6_len in 32u8..=128,
        subnet_v4 in 8u8..=31,
        subnet_v6 in 16u8..=127,
        after in 1usize..4,
    ) {
        let mut text = format!(
            "loyalty = 1\nipv4_prefix = {v4_len}\nipv6_prefix = {v6_len}\nsubnet_after = {after}\nsubnet_v4 = {subnet_v4}\nsubnet_v6 = {subnet_v6}\nbantime = 600\nhost = 203.0.113.77\n"
        );
        for n in &trust {
            text.push_str(&format!("trust = {n}\n"));
        }
        let mut r = rig(&text);
        let cfg = r.cfg.clone();
        let mut engine = Engine::new(&cfg);
        let mut protected = trust.clone();
        protected.extend(["203.0.113.77/32", "127.0.0.0/8", "::1/128"].map(|n| parse_net(n).unwrap()));
        let mut events = events;
        events.sort_by_key(|e| e.2);
        for (kind, ip, t) in events {
            let now = T0 + t;
            if let Verdict::Ban(crate::engine::Tipped { penalty, net, .. }) = engine.feed(&SecurityEvent::new(kind, b"PJSIP", b"", ip), t as u64) {
                r.bans.queue(BanRequest {
                    penalty,
                    ..BanRequest::new(net, Origin::Daemon, kind.name(), now, Lifetime::Escalating)
                });
            }
            let banned = r.bans.flush(&cfg, || now).banned;
            r.bans.escalate(&cfg, &banned, engine.admission());
            r.timers(now);
            for held in r.kernel.0.borrow().held.iter() {
                for p in &protected {
                    prop_assert!(
                        !held.contains(p) && !p.contains(held),
                        "the kernel holds {held}, which takes in the protected {p}"
                    );
                }
            }
        }
    }
}
