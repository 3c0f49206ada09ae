//! The one admission check: may this network be banned, through this door? Every door asks
//! it and nothing else decides it: the engine's verdicts (through the pipeline, `judge.rs`),
//! an admin's `-a` (the command alone or through the daemon), CrowdSec's decisions, subnet
//! escalation; and a ban already made that would be refused now (protection came after it)
//! is lifted by the same rule. Rules that spare more go here and nowhere else.
//!
//! Never banned, by anyone: loopback, the AMI host, `trust`, the PBX's own addresses, and
//! what is no host's address (multicast, broadcast, unspecified). Never banned as a whole
//! (scored address by address instead): a network that takes in one of those, or one of the
//! PBX's own links (`own.rs`: a ban of it cuts off every phone on the link).
//!
//! No I/O: the AMI host's addresses, the trusted names' and the interfaces' come in read.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::net_text;
use crate::config::Config;
use crate::trust::Guard;

/// Where a ban comes from, as far as the rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// The daemon's own judgment of AMI events.
    Judged,
    /// An admin's `-a`; `admin` is the address the admin is logged in from (`SSH_CLIENT`),
    /// banned only with `force`.
    Manual { admin: Option<IpAddr>, force: bool },
    /// A decision pulled from CrowdSec.
    Crowdsec,
    /// Subnet escalation over the daemon's own bans.
    Subnet,
}

/// Why a network is not banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It takes in a protected network: trust, loopback, the AMI host.
    Protected(IpNet),
    /// IPv6 while `ipv6 = no`.
    Ipv6Off,
    /// Wider than any one attacker holds (a CrowdSec decision).
    TooWide { widest: u8 },
    /// It takes in the address the admin is connected from (`-a` without `--force`).
    AdminsOwn(IpAddr),
    /// It takes in one of the PBX's own addresses.
    Own(IpNet),
    /// Wider than one address, and it takes in one of the PBX's own links (an admin's
    /// `-a --force` may).
    OnLink(IpNet),
    /// It is, or takes in, what is no host's address: multicast, broadcast.
    NotUnicast,
}

impl Refusal {
    /// Whether a ban made before this refusal held is to be lifted now: protection that
    /// came after a ban wins.
    pub fn lifts_a_ban(self) -> bool {
        matches!(
            self,
            Refusal::Protected(_) | Refusal::Own(_) | Refusal::OnLink(_) | Refusal::NotUnicast
        )
    }
}

/// Written to follow the network: `203.0.113.0/24 is wider than ...`.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Protected(p) => write!(
                f,
                "is protected (trusted or local: {}); not banned",
                net_text(p)
            ),
            Refusal::Ipv6Off => f.write_str("is IPv6, and IPv6 is disabled (ipv6 = no)"),
            Refusal::TooWide { widest } => {
                write!(
                    f,
                    "is wider than /{widest}, more than any one attacker holds"
                )
            }
            Refusal::AdminsOwn(ip) => write!(
                f,
                "contains the address you are connected from ({ip}); use --force to ban it"
            ),
            Refusal::Own(p) => write!(
                f,
                "is, or takes in, the PBX's own address {}; not banned",
                net_text(p)
            ),
            Refusal::OnLink(p) => write!(
                f,
                "takes in the PBX's own link {}: its ban would cut off every phone on it; addresses there are banned one by one",
                net_text(p)
            ),
            Refusal::NotUnicast => {
                f.write_str("is, or takes in, no host's address (multicast or broadcast)")
            }
        }
    }
}

/// Networks wider than these are refused from CrowdSec: no one attacker holds more.
const CROWDSEC_WIDEST_V4: u8 = 8;
const CROWDSEC_WIDEST_V6: u8 = 16;

pub struct Admission {
    guard: Guard,
    ipv6: bool,
    /// The PBX's own links (`own.rs`): no network ban takes one in.
    links: Vec<IpNet>,
}

impl Admission {
    /// `ami`: the AMI host's addresses (a literal `host`; a name is protected by the address
    /// each connection reaches, `set_peer`).
    pub fn new(cfg: &Config, ami: &[IpAddr]) -> Admission {
        Admission {
            guard: Guard::new(&cfg.trust, ami),
            ipv6: cfg.ipv6,
            links: Vec::new(),
        }
    }

    /// The AMI host as `cfg.host` names it when it is an address; empty for a name.
    pub fn ami_literal(cfg: &Config) -> Vec<IpAddr> {
        cfg.host.parse::<IpAddr>().into_iter().collect()
    }

    /// A reloaded config: the trusted names and the AMI connection's address are kept.
    pub fn reconfigure(&mut self, cfg: &Config) {
        let named = self.guard.named().to_vec();
        let own = self.guard.own().to_vec();
        let peer = self.guard.peer();
        self.guard = Guard::new(&cfg.trust, &Admission::ami_literal(cfg));
        self.guard.set_named(&named);
        self.guard.set_own(&own);
        self.guard.set_peer(peer);
        self.ipv6 = cfg.ipv6;
    }

    /// The PBX's own addresses and links, as last read (`own.rs`).
    pub fn set_own(&mut self, addrs: &[IpNet], links: &[IpNet]) {
        self.guard.set_own(addrs);
        self.links = links.to_vec();
    }

    /// The address Ampere is connected to for AMI (resolved anew at each connect).
    pub fn set_peer(&mut self, peer: Option<IpAddr>) {
        self.guard.set_peer(peer);
    }

    pub fn peer(&self) -> Option<IpAddr> {
        self.guard.peer()
    }

    /// The addresses the `trust = NAME` entries resolve to now.
    pub fn set_named(&mut self, nets: &[IpNet]) {
        self.guard.set_named(nets);
    }

    /// The protected network that covers `ip` (already canonical): its events count for
    /// nothing. On every event: masks, no allocation.
    #[inline]
    pub fn protects(&self, ip: IpAddr) -> Option<IpNet> {
        self.guard.protects(ip)
    }

    /// A protected network that `net` overlaps (banning `net` would ban part of it).
    pub fn overlaps(&self, net: &IpNet) -> Option<IpNet> {
        self.guard.overlaps(net)
    }

    /// What makes `net` a network never banned as a whole: a protected network in it, one
    /// of the PBX's links it overlaps, or no host's addresses in it. A prefix that narrows is
    /// scored address by address (`Engine::key_of`).
    pub fn narrows(&self, net: &IpNet) -> Option<IpNet> {
        self.guard
            .overlaps(net)
            .or_else(|| self.link_of(net))
            .or_else(|| crate::addr::not_unicast(net).then_some(*net))
    }

    /// One of the PBX's links that `net`, wider than one address, overlaps.
    fn link_of(&self, net: &IpNet) -> Option<IpNet> {
        if crate::addr::is_host(net) {
            return None;
        }
        self.links
            .iter()
            .find(|l| l.contains(net) || net.contains(*l))
            .copied()
    }

    /// Trusted networks, loopback and the AMI host (the firewall's SIP limits exempt them).
    pub fn protected(&self) -> &[IpNet] {
        self.guard.networks()
    }

    /// How the log names `p`, a network `narrows` returned.
    pub fn name_of(&self, p: &IpNet) -> &'static str {
        if self.guard.own().contains(p) {
            "the PBX's own address"
        } else if self.links.contains(p) {
            "the PBX's own link"
        } else if crate::addr::not_unicast(p) {
            "no host's addresses (multicast or broadcast)"
        } else {
            "the protected"
        }
    }

    /// The largest networks inside `net` that `door` may ban now, when `net` itself may
    /// not because it takes in something protected or the PBX's own address: `net` halved
    /// around it until each half may be banned (the trusted address alone let through).
    /// None when more than `max` pieces would be needed, or when the refusal is one a
    /// split cannot help (the PBX's own link, IPv6 off, ...).
    pub fn split_around(&self, net: &IpNet, door: Door, max: usize) -> Option<Vec<IpNet>> {
        let mut out = Vec::new();
        let mut todo = vec![*net];
        while let Some(n) = todo.pop() {
            match self.check(&n, door) {
                Ok(()) => out.push(n),
                Err(Refusal::Protected(p) | Refusal::Own(p)) if n != p && !p.contains(&n) => {
                    let halves = n.subnets(n.prefix_len() + 1).ok()?;
                    todo.extend(halves);
                }
                // Inside the protected network, or what no split helps: let through.
                Err(Refusal::Protected(_) | Refusal::Own(_)) => {}
                Err(_) => return None,
            }
            if out.len() + todo.len() > max {
                return None;
            }
        }
        out.sort();
        Some(out)
    }

    /// May `net` be banned through `door`?
    pub fn check(&self, net: &IpNet, door: Door) -> Result<(), Refusal> {
        if let Some(p) = self.guard.overlaps(net) {
            return Err(if self.guard.own().contains(&p) {
                Refusal::Own(p)
            } else {
                Refusal::Protected(p)
            });
        }
        if crate::addr::not_unicast(net) {
            return Err(Refusal::NotUnicast);
        }
        if let Some(l) = self.link_of(net) {
            if !matches!(door, Door::Manual { force: true, .. }) {
                return Err(Refusal::OnLink(l));
            }
        }
        if crate::addr::is_v6(net) && !self.ipv6 {
            return Err(Refusal::Ipv6Off);
        }
        match door {
            Door::Crowdsec => {
                let widest = if crate::addr::is_v6(net) {
                    CROWDSEC_WIDEST_V6
                } else {
                    CROWDSEC_WIDEST_V4
                };
                if net.prefix_len() < widest {
                    return Err(Refusal::TooWide { widest });
                }
            }
            Door::Manual {
                admin: Some(ip),
                force: false,
            } if net.contains(&ip) => return Err(Refusal::AdminsOwn(ip)),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(text: &str) -> Admission {
        let cfg = crate::config::parse(text.as_bytes(), "t").unwrap().config;
        Admission::new(&cfg, &Admission::ami_literal(&cfg))
    }

    fn net(s: &str) -> IpNet {
        crate::addr::parse_net(s).unwrap()
    }

    #[test]
    fn every_door_refuses_what_takes_in_a_protected_address() {
        let a = admission("trust = 192.0.2.0/24\nhost = 198.51.100.5\n");
        let doors = [
            Door::Judged,
            Door::Manual {
                admin: None,
                force: true,
            },
            Door::Crowdsec,
            Door::Subnet,
        ];
        for d in doors {
            for n in [
                "192.0.2.7",
                "192.0.0.0/16",
                "198.51.100.5",
                "127.0.0.1",
                "::1",
            ] {
                assert!(
                    matches!(a.check(&net(n), d), Err(Refusal::Protected(_))),
                    "{n} through {d:?}"
                );
            }
            assert_eq!(a.check(&net("203.0.113.2"), d), Ok(()));
        }
    }

    #[test]
    fn ipv6_off_is_refused_at_every_door() {
        let a = admission("ipv6 = no\n");
        for d in [Door::Judged, Door::Crowdsec, Door::Subnet] {
            assert_eq!(a.check(&net("2001:db8::/64"), d), Err(Refusal::Ipv6Off));
        }
        assert_eq!(
            admission("").check(&net("2001:db8::/64"), Door::Judged),
            Ok(())
        );
    }

    #[test]
    fn crowdsec_may_not_ban_wider_than_an_attacker_and_an_admin_not_their_own_address() {
        let a = admission("");
        assert_eq!(
            a.check(&net("10.0.0.0/7"), Door::Crowdsec),
            Err(Refusal::TooWide { widest: 8 })
        );
        assert_eq!(a.check(&net("10.0.0.0/8"), Door::Crowdsec), Ok(()));
        assert_eq!(
            a.check(&net("2001:db8::/15"), Door::Crowdsec),
            Err(Refusal::TooWide { widest: 16 })
        );
        let me: IpAddr = "203.0.113.9".parse().unwrap();
        let manual = |force| Door::Manual {
            admin: Some(me),
            force,
        };
        assert_eq!(
            a.check(&net("203.0.113.0/24"), manual(false)),
            Err(Refusal::AdminsOwn(me))
        );
        assert_eq!(a.check(&net("203.0.113.0/24"), manual(true)), Ok(()));
        assert_eq!(a.check(&net("203.0.114.0/24"), manual(false)), Ok(()));
        assert!(Refusal::Protected(net("127.0.0.1")).lifts_a_ban());
        assert!(!Refusal::Ipv6Off.lifts_a_ban());
    }

    #[test]
    fn a_network_is_split_around_what_it_takes_in() {
        let a = admission("trust = 198.51.100.77\ntrust = 2001:db8:5::7\n");
        let pieces = a
            .split_around(&net("198.51.100.0/24"), Door::Judged, 256)
            .unwrap();
        // Eight networks: everything of the /24 but the trusted address.
        assert_eq!(pieces.len(), 8, "{pieces:?}");
        let total: u32 = pieces.iter().map(|p| 1u32 << (32 - p.prefix_len())).sum();
        assert_eq!(total, 255);
        let trusted: IpAddr = "198.51.100.77".parse().unwrap();
        assert!(pieces.iter().all(|p| !p.contains(&trusted)));
        for attacker in [
            "198.51.100.10",
            "198.51.100.76",
            "198.51.100.78",
            "198.51.100.255",
        ] {
            let ip: IpAddr = attacker.parse().unwrap();
            assert!(pieces.iter().any(|p| p.contains(&ip)), "{attacker}");
        }
        // A /64 around one address: 64 networks; more than allowed: none.
        let v6 = a
            .split_around(&net("2001:db8:5::/64"), Door::Judged, 256)
            .unwrap();
        assert_eq!(v6.len(), 64);
        assert_eq!(
            a.split_around(&net("2001:db8:5::/64"), Door::Judged, 10),
            None
        );
        // Nothing to split around: the network itself.
        assert_eq!(
            a.split_around(&net("203.0.113.0/24"), Door::Judged, 256),
            Some(vec![net("203.0.113.0/24")])
        );
    }

    #[test]
    fn the_pbxs_own_addresses_and_links() {
        let mut a = admission("");
        a.set_own(
            &[net("192.0.2.1"), net("2001:db8:a3e::2")],
            &[net("192.0.2.0/24"), net("2001:db8:a3e::/64")],
        );
        let doors = [
            Door::Judged,
            Door::Crowdsec,
            Door::Subnet,
            Door::Manual {
                admin: None,
                force: true,
            },
        ];
        for d in doors {
            assert_eq!(
                a.check(&net("2001:db8:a3e::2"), d),
                Err(Refusal::Own(net("2001:db8:a3e::2")))
            );
            assert_eq!(
                a.check(&net("192.0.2.1"), d),
                Err(Refusal::Own(net("192.0.2.1")))
            );
            // A phone on the link may be banned, alone.
            assert_eq!(a.check(&net("2001:db8:a3e::50"), d), Ok(()));
            assert_eq!(a.check(&net("224.0.0.1"), d), Err(Refusal::NotUnicast));
            assert_eq!(a.check(&net("ff02::1"), d), Err(Refusal::NotUnicast));
            assert_eq!(
                a.check(&net("255.255.255.255"), d),
                Err(Refusal::NotUnicast)
            );
            // Unspecified: the guard's fixed list has it already.
            assert!(a.check(&net("0.0.0.0"), d).is_err());
            assert!(a.check(&net("::"), d).is_err());
            assert_eq!(a.check(&net("224.0.0.0/3"), d), Err(Refusal::NotUnicast));
        }
        // The link as a whole, or any network that takes in part of it: an admin's forced -a
        // only.
        for (n, link) in [
            ("2001:db8:a3e:0:1::/80", "2001:db8:a3e::/64"),
            ("192.0.2.128/25", "192.0.2.0/24"),
            ("192.0.2.0/23", "192.0.2.0/24"),
        ] {
            let want = if n == "192.0.2.0/23" {
                Refusal::Own(net("192.0.2.1"))
            } else {
                Refusal::OnLink(net(link))
            };
            assert_eq!(a.check(&net(n), Door::Judged), Err(want), "{n}");
        }
        assert_eq!(
            a.check(
                &net("192.0.2.128/25"),
                Door::Manual {
                    admin: None,
                    force: true
                }
            ),
            Ok(())
        );
        assert_eq!(
            a.narrows(&net("2001:db8:a3e::/64")),
            Some(net("2001:db8:a3e::2"))
        );
        assert_eq!(a.narrows(&net("2001:db8:bad::/64")), None);
        assert!(a.protects("2001:db8:a3e::2".parse().unwrap()).is_some());
        assert!(a.protects("2001:db8:a3e::50".parse().unwrap()).is_none());
        // A reload keeps them.
        let cfg = crate::config::parse(b"trust = 10.0.0.0/8\n", "t")
            .unwrap()
            .config;
        a.reconfigure(&cfg);
        assert_eq!(
            a.check(&net("192.0.2.1"), Door::Judged),
            Err(Refusal::Own(net("192.0.2.1")))
        );
    }
}
