//! Property tests over random event sequences (proptest).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ampere::engine::{Engine, Verdict};
use ampere::event::SecurityEvent;
use ampere::score::EventKind;
use ampere::table::PenaltyTable;
use ipnet::IpNet;
use proptest::prelude::*;

#[path = "common/strategies.rs"]
mod strategies;
use strategies::{near_addr, trust_net};

fn kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(EventKind::ALL.to_vec())
}

/// Addresses from a small pool, so that hosts repeat and cross the limit, half of them in
/// the trusted networks.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(192, 168, 0, n))),
        (0u8..8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))),
        (0u16..8).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n))),
        (0u16..8).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, n))),
        (0u8..8).prop_map(|n| IpAddr::V6(Ipv4Addr::new(192, 168, 0, n).to_ipv6_mapped())),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

fn trusted(ip: IpAddr) -> bool {
    let ip = ampere::addr::canonical(ip);
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [192, 168, 0] || v4.is_loopback(),
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 1] || v6.is_loopback(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_trusted_address_is_never_banned(
        events in prop::collection::vec((kind(), addr(), 0u64..5000), 1..400),
        loyalty in 1u32..4,
    ) {
        let cfg = ampere::config::parse(
            format!("loyalty = {loyalty}\ntrust = 192.168.0.0/24\ntrust = 2001:db8:1::/48\n").as_bytes(),
            "t",
        )
        .unwrap()
        .config;
        let mut e = Engine::new(&cfg);
        for (k, ip, t) in events {
            if let Verdict::Ban(..) = e.feed(&SecurityEvent::new(k, b"PJSIP", b"", ip), t) {
                prop_assert!(!trusted(ip), "{ip} is trusted but was banned");
            }
        }
    }

    /// Prefix scoring: whatever the prefix widths and the trusted networks, a ban never
    /// covers a trusted address, loopback or the AMI host, and it covers the address whose
    /// event made it.
    #[test]
    fn a_ban_never_covers_a_trusted_address_whatever_the_prefix(
        events in prop::collection::vec((kind(), near_addr(), 0u64..5000), 1..400),
        trust in prop::collection::vec(trust_net(), 0..4),
        v4_len in 16u8..=32,
        v6_len in 32u8..=128,
        loyalty in 1u32..4,
    ) {
        let mut text = format!(
            "loyalty = {loyalty}\nipv4_prefix = {v4_len}\nipv6_prefix = {v6_len}\nhost = 203.0.113.77\n"
        );
        for n in &trust {
            text.push_str(&format!("trust = {n}\n"));
        }
        let cfg = ampere::config::parse(text.as_bytes(), "t").unwrap().config;
        let mut protected = trust.clone();
        protected.extend(["203.0.113.77/32", "127.0.0.0/8", "::1/128"].map(|n| n.parse::<IpNet>().unwrap()));
        let mut e = Engine::new(&cfg);
        for (k, ip, t) in events {
            if let Verdict::Ban(_, net, _) = e.feed(&SecurityEvent::new(k, b"PJSIP", b"", ip), t) {
                prop_assert!(net.contains(&ampere::addr::canonical(ip)), "{net} does not cover {ip}");
                for p in &protected {
                    prop_assert!(
                        !net.contains(p) && !p.contains(&net),
                        "{net} (for {ip}) covers the protected {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_table_never_exceeds_its_capacity(
        ops in prop::collection::vec((any::<u32>(), any::<bool>(), 0u32..100), 1..2000),
        hosts in 16usize..200,
    ) {
        let mut t = PenaltyTable::new(hosts);
        let mut now = 0;
        for (n, remove, p) in ops {
            let ip = IpAddr::V4(Ipv4Addr::from(n % 1000));
            if remove {
                t.remove(ip);
            } else {
                now += 1;
                t.set(ip, p, now);
                prop_assert_eq!(t.get(ip), Some((p, now)));
            }
            prop_assert!(t.len() <= t.capacity());
        }
    }
}

/// What a correctly configured phone does: register an account (challenge, then success), or
/// send a keepalive for an account it has registered (a challenge it never answers).
#[derive(Clone, Debug)]
enum PhoneStep {
    Register(u8),
    Keepalive(u8),
}

fn phone_steps() -> impl Strategy<Value = Vec<(PhoneStep, u64)>> {
    prop::collection::vec(
        (
            prop_oneof![
                (0u8..3).prop_map(PhoneStep::Register),
                (0u8..3).prop_map(PhoneStep::Keepalive)
            ],
            0u64..4000,
        ),
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_correctly_authenticating_phone_is_never_banned(
        steps in phone_steps(),
        noise in prop::collection::vec((kind(), 0u8..50), 0..300),
        loyalty in 1u32..4,
    ) {
        let cfg = ampere::config::parse(format!("loyalty = {loyalty}\n").as_bytes(), "t")
            .unwrap()
            .config;
        let mut e = Engine::new(&cfg);
        let phone = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let accounts = [&b"1001"[..], b"1002", b"2001"];
        let mut registered = [false; 3];
        let mut now = 0;
        let mut noise = noise.into_iter();
        for (step, gap) in steps {
            now += gap;
            // Other hosts' events in between, attackers among them.
            if let Some((k, n)) = noise.next() {
                let other = IpAddr::V4(Ipv4Addr::new(203, 0, 113, n));
                e.feed(&SecurityEvent::new(k, b"PJSIP", accounts[usize::from(n % 3)], other), now);
            }
            let events: Vec<(EventKind, usize)> = match step {
                PhoneStep::Register(a) => {
                    registered[usize::from(a)] = true;
                    vec![(EventKind::ChallengeSent, a.into()), (EventKind::SuccessfulAuth, a.into())]
                }
                PhoneStep::Keepalive(a) if registered[usize::from(a)] => {
                    vec![(EventKind::ChallengeSent, a.into())]
                }
                PhoneStep::Keepalive(_) => vec![],
            };
            for (k, a) in events {
                let v = e.feed(&SecurityEvent::new(k, b"PJSIP", accounts[a], phone), now);
                prop_assert!(!matches!(v, Verdict::Ban(..)), "the phone was banned at {now}: {v:?}");
            }
        }
    }
}
