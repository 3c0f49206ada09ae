//! Address strategies shared by the property tests (`tests/properties.rs`) and the unit
//! tests of subnet escalation (`src/bans/tests/subnet.rs`, which include this file by path).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;

/// Addresses a few bits apart, so that prefixes of any width take in several of them and
/// the trusted networks of `trust_net`.
pub fn near_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..8).prop_map(|(c, n)| IpAddr::V4(Ipv4Addr::new(203, 0, 112 + c, 70 + n))),
        (0u16..4, 0u16..8)
            .prop_map(|(m, n)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, m, 0, 0, n))),
        (0u16..4, 0u16..8)
            .prop_map(|(m, n)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, m, 0, 0, 0, n))),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

/// A trusted network among `near_addr`'s addresses, from a single address to a wide one.
pub fn trust_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u8..4, 0u8..8, 20u8..=32).prop_map(|(c, n, len)| {
            IpNet::new(IpAddr::V4(Ipv4Addr::new(203, 0, 112 + c, 70 + n)), len)
                .unwrap()
                .trunc()
        }),
        (0u16..4, 0u16..8, 40u8..=128).prop_map(|(m, n, len)| {
            IpNet::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, m, 0, 0, n)),
                len,
            )
            .unwrap()
            .trunc()
        }),
    ]
}
