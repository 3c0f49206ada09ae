//! Addresses that are never banned: loopback, the AMI host itself, and every `trust` network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use ipnet::IpNet;

use crate::addr::canonical;

pub struct Guard {
    /// Loopback, the `trust` networks and the AMI host, then (from `fixed` on) the
    /// addresses of the trusted names as last resolved.
    nets: Vec<IpNet>,
    fixed: usize,
    /// The address Ampere is connected to for AMI now: never banned, even when the AMI host
    /// is a name that did not resolve when the guard was made.
    peer: Option<IpAddr>,
}

impl Guard {
    /// `ami_host` is resolved here (a name such as `localhost` is allowed in the config).
    pub fn new(trust: &[IpNet], ami_host: &str) -> Guard {
        let mut nets: Vec<IpNet> = vec![
            IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("valid prefix"),
            IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpNet::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ];
        nets.extend_from_slice(trust);
        if let Ok(addrs) = (ami_host, 0).to_socket_addrs() {
            nets.extend(addrs.map(|a| IpNet::from(canonical(a.ip()))));
        }
        Guard {
            fixed: nets.len(),
            nets,
            peer: None,
        }
    }

    /// The addresses of the `trust = NAME` entries, in place of those before.
    pub fn set_named(&mut self, named: &[IpNet]) {
        self.nets.truncate(self.fixed);
        self.nets.extend_from_slice(named);
    }

    pub fn named(&self) -> &[IpNet] {
        &self.nets[self.fixed..]
    }

    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.peer = peer.map(canonical);
    }

    /// Every protected network: loopback, the AMI host, the trusted ones.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// The protected network that covers `ip` (already canonical: see `SecurityEvent`).
    pub fn protects(&self, ip: IpAddr) -> Option<IpNet> {
        if self.peer == Some(ip) {
            return Some(IpNet::from(ip));
        }
        self.nets.iter().find(|n| n.contains(&ip)).copied()
    }

    /// A protected network that overlaps `net` (banning `net` would ban part of it).
    pub fn overlaps(&self, net: &IpNet) -> Option<IpNet> {
        if let Some(peer) = self.peer.filter(|p| net.contains(p)) {
            return Some(IpNet::from(peer));
        }
        self.nets
            .iter()
            .find(|n| n.contains(net) || net.contains(*n))
            .copied()
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
            "192.0.2.2",
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
        let mut g = Guard::new(&["192.168.0.0/24".parse().unwrap()], "127.0.0.1");
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
        let g = Guard::new(&["192.168.0.0/24".parse().unwrap()], "127.0.0.1");
        assert!(g.overlaps(&"192.168.0.0/16".parse().unwrap()).is_some());
        assert!(g.overlaps(&"192.168.0.7/32".parse().unwrap()).is_some());
        assert!(g.overlaps(&"0.0.0.0/0".parse().unwrap()).is_some());
        assert!(g.overlaps(&"::/0".parse().unwrap()).is_some());
        assert!(g.overlaps(&"192.168.1.0/24".parse().unwrap()).is_none());
    }
}
