//! Addresses that are never banned: loopback, the AMI host itself, every `trust` network,
//! and the PBX's own addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::addr::canonical;

pub struct Guard {
    /// Loopback, the `trust` networks and the AMI host, then (from `fixed` on) the
    /// addresses of the trusted names as last resolved, then (from `fixed + named` on) the
    /// PBX's own addresses as last read.
    nets: Vec<IpNet>,
    named: usize,
    /// `nets` as (IPv6, network, mask) over the address's bits: `protects` runs on every
    /// event, and `IpNet::contains` computed its mask each time.
    masks: Vec<(bool, u128, u128)>,
    fixed: usize,
    /// The address Ampere is connected to for AMI now: never banned, even when the AMI host
    /// is a name that did not resolve when the guard was made.
    peer: Option<IpAddr>,
}

impl Guard {
    /// `ami` are the AMI host's addresses, resolved by the caller: nothing here does I/O (a
    /// `host` given as a name is protected by the address each connection reaches,
    /// `set_peer`).
    pub fn new(trust: &[IpNet], ami: &[IpAddr]) -> Guard {
        let mut nets: Vec<IpNet> = vec![
            IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("valid prefix"),
            IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpNet::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ];
        nets.extend_from_slice(trust);
        nets.extend(ami.iter().map(|a| IpNet::from(canonical(*a))));
        let mut g = Guard {
            fixed: nets.len(),
            named: 0,
            nets,
            masks: Vec::new(),
            peer: None,
        };
        g.compile();
        g
    }

    fn compile(&mut self) {
        self.masks = self
            .nets
            .iter()
            .map(|n| {
                let (v6, bits, _) = bits_of(n.network());
                let mask = mask_of(n);
                (v6, bits & mask, mask)
            })
            .collect();
    }

    /// The addresses of the `trust = NAME` entries, in place of those before.
    pub fn set_named(&mut self, named: &[IpNet]) {
        let own = self.own().to_vec();
        self.nets.truncate(self.fixed);
        self.nets.extend_from_slice(named);
        self.named = named.len();
        self.nets.extend_from_slice(&own);
        self.compile();
    }

    pub fn named(&self) -> &[IpNet] {
        &self.nets[self.fixed..self.fixed + self.named]
    }

    /// The PBX's own addresses (`own.rs`), in place of those before.
    pub fn set_own(&mut self, own: &[IpNet]) {
        self.nets.truncate(self.fixed + self.named);
        self.nets.extend_from_slice(own);
        self.compile();
    }

    pub fn own(&self) -> &[IpNet] {
        &self.nets[self.fixed + self.named..]
    }

    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.peer = peer.map(canonical);
    }

    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// Every protected network: loopback, the AMI host, the trusted ones.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// The protected network that covers `ip` (already canonical: see `SecurityEvent`).
    #[inline]
    pub fn protects(&self, ip: IpAddr) -> Option<IpNet> {
        if self.peer == Some(ip) {
            return Some(IpNet::from(ip));
        }
        let (v6, bits, _) = bits_of(ip);
        let i = self
            .masks
            .iter()
            .position(|&(f, net, mask)| f == v6 && bits & mask == net)?;
        Some(self.nets[i])
    }

    /// A protected network that overlaps `net` (banning `net` would ban part of it).
    pub fn overlaps(&self, net: &IpNet) -> Option<IpNet> {
        if let Some(peer) = self.peer.filter(|p| net.contains(p)) {
            return Some(IpNet::from(peer));
        }
        // Two networks overlap when they agree on the bits of the shorter prefix.
        let (v6, bits, _) = bits_of(net.network());
        let own = mask_of(net);
        let i = self
            .masks
            .iter()
            .position(|&(f, n, mask)| f == v6 && (bits ^ n) & (mask & own) == 0)?;
        Some(self.nets[i])
    }
}

/// The prefix of `net` as a mask over `bits_of` (an IPv4 mask also covers the 96 bits
/// above the address, which are zero on both sides).
fn mask_of(net: &IpNet) -> u128 {
    let len = if matches!(net, IpNet::V4(_)) { 32 } else { 128 };
    u128::MAX
        .checked_shl(len - u32::from(net.prefix_len()))
        .unwrap_or(0)
}

/// An address's family, its bits (an IPv4 address in the low 32) and how many there are.
fn bits_of(ip: IpAddr) -> (bool, u128, u32) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (true, u128::from(a), 128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_trust_and_ami_host() {
        let g = Guard::new(
            &[
                "10.10.32.0/19".parse().unwrap(),
                "2001:db8:99::/48".parse().unwrap(),
            ],
            &[ip("192.0.2.2")],
        );
        // Mapped addresses are made canonical before they get here (SecurityEvent::new).
        for p in ["::ffff:127.0.0.1", "::ffff:192.0.2.2"] {
            assert!(g.protects(canonical(ip(p))).is_some(), "{p}");
        }
        for p in [
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "10.10.40.1",
            "2001:db8:99::2",
            "192.0.2.2",
            "0.0.0.0",
        ] {
            assert!(g.protects(ip(p)).is_some(), "{p}");
        }
        for p in ["10.10.64.1", "203.0.113.2", "2001:db8:98::2", "fd99:1::2"] {
            assert!(g.protects(ip(p)).is_none(), "{p}");
        }
    }

    #[test]
    fn named_addresses_are_replaced_not_added_up() {
        let mut g = Guard::new(&["192.168.0.0/24".parse().unwrap()], &[ip("127.0.0.1")]);
        g.set_named(&["203.0.113.7/32".parse().unwrap()]);
        assert!(g.protects(ip("203.0.113.7")).is_some());
        g.set_named(&["203.0.113.9/32".parse().unwrap()]);
        assert!(g.protects(ip("203.0.113.7")).is_none());
        assert!(g.protects(ip("203.0.113.9")).is_some());
        assert!(g.protects(ip("192.168.0.4")).is_some());
        g.set_named(&[]);
        assert!(g.named().is_empty());
        assert!(g.protects(ip("192.168.0.4")).is_some());
    }

    #[test]
    fn overlapping_networks_are_protected() {
        let g = Guard::new(&["192.168.0.0/24".parse().unwrap()], &[ip("127.0.0.1")]);
        assert!(g.overlaps(&"192.168.0.0/16".parse().unwrap()).is_some());
        assert!(g.overlaps(&"192.168.0.7/32".parse().unwrap()).is_some());
        assert!(g.overlaps(&"0.0.0.0/0".parse().unwrap()).is_some());
        assert!(g.overlaps(&"::/0".parse().unwrap()).is_some());
        assert!(g.overlaps(&"192.168.1.0/24".parse().unwrap()).is_none());
    }

    #[test]
    fn protects_agrees_with_ipnet_at_every_prefix_length() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..2_000 {
            let base = [next(), next(), next(), next()];
            let v4 = IpAddr::V4(Ipv4Addr::from(base[0]));
            let v6 = IpAddr::V6(Ipv6Addr::from(
                (u128::from(base[0]) << 96) | (u128::from(base[1]) << 64) | u128::from(base[2]),
            ));
            let nets = [
                IpNet::new(v4, (next() % 33) as u8).unwrap().trunc(),
                IpNet::new(v6, (next() % 129) as u8).unwrap().trunc(),
            ];
            let g = Guard::new(&nets, &[]);
            for probe in [v4, v6] {
                // Near the network (a few low or high bits flipped) and far from it.
                let flip = 1u128 << (next() % 128);
                let near = match probe {
                    IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ flip as u32)),
                    IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ flip)),
                };
                for a in [probe, near, IpAddr::V4(Ipv4Addr::from(next()))] {
                    let want = g.nets.iter().find(|n| n.contains(&a)).copied();
                    assert_eq!(g.protects(a), want, "{a} in {nets:?}");
                    let max = if a.is_ipv4() { 33 } else { 129 };
                    let net = IpNet::new(a, (next() % max) as u8).unwrap().trunc();
                    let want = g
                        .nets
                        .iter()
                        .find(|n| n.contains(&net) || net.contains(*n))
                        .copied();
                    assert_eq!(g.overlaps(&net), want, "{net} against {nets:?}");
                }
            }
        }
    }
}
