//! Property tests over random event sequences (proptest).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ampere::engine::{Engine, Verdict};
use ampere::event::SecurityEvent;
use ampere::score::EventKind;
use ampere::table::PenaltyTable;
use proptest::prelude::*;

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
            if let Verdict::Ban(_) = e.feed(&SecurityEvent::new(k, b"PJSIP", b"", ip), t) {
                prop_assert!(!trusted(ip), "{ip} is trusted but was banned");
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
