//! What Asterisk says about who may use it, besides its security events: which address a
//! peer registered from (chan_sip's and chan_iax2's `PeerStatus`, the `PeerEntry` answers
//! to `SIPpeers`/`IAXpeers`), which contacts PJSIP holds (`ContactList`, the answer to
//! `PJSIPShowContacts`), and which addresses identify a trunk (`IdentifyDetail`'s `Match`,
//! a chan_sip peer with a fixed `host=`). Turned into `Fact`s for the engine's memory of
//! known hosts (`known.rs`), never into anything that bans.
//!
//! Where an address comes from decides what it may prove (`Source::proved`): Asterisk
//! observed it (a login, an IAX2 registration: the packet's source, behind a call token),
//! the admin configured it (a trunk), or the client wrote it (PJSIP's `ViaAddr` is the
//! sent-by of the request's last Via header; chan_sip takes a peer's address from its
//! Contact unless it detected NAT). The Contact URI's host is never read.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::canonical;
use crate::ami::Message;

/// Where a known host's address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A `SuccessfulAuth` from the address: Asterisk saw it answer a challenge sent there.
    Login,
    /// chan_sip holds a registration from the address (`PeerStatus: Registered`, `SIPpeers`).
    Sip,
    /// PJSIP holds a contact whose `ViaAddr` is the address (`PJSIPShowContacts`).
    Contact,
    /// chan_iax2 holds a registration from the address: its packets' source, which IAX2's
    /// call token proved before the registration was taken.
    Iax2,
    /// A trunk identified by address (`IdentifyDetail` `Match`, a `host=` peer): the admin's
    /// configuration.
    Trunk,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Login,
        Source::Sip,
        Source::Contact,
        Source::Iax2,
        Source::Trunk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Login => "login",
            Source::Sip => "sip-registration",
            Source::Contact => "pjsip-contact",
            Source::Iax2 => "iax2-registration",
            Source::Trunk => "trunk",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the address is Asterisk's observation or the admin's word, not the client's.
    pub fn proved(self) -> bool {
        matches!(self, Source::Login | Source::Iax2 | Source::Trunk)
    }
}

/// One host or network that Asterisk reports for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fact<'a> {
    pub net: IpNet,
    pub account: &'a [u8],
    pub source: Source,
}

/// Networks wider than these in a trunk's `Match` are left out: a known network is spared
/// what a stranger is not, and `0.0.0.0/0` would spare everybody.
const WIDEST_V4: u8 = 16;
const WIDEST_V6: u8 = 32;
/// Networks read from one `Match` at most.
const MAX_MATCHES: usize = 64;

/// The events that carry facts, by name; everything else is none.
pub fn is_fact_event(name: &[u8]) -> bool {
    matches!(
        name,
        b"PeerStatus" | b"PeerEntry" | b"ContactList" | b"IdentifyDetail"
    )
}

/// The facts in `m`, an event named `event` (`is_fact_event`).
pub fn read<'a>(event: &[u8], m: &Message<'a>) -> Vec<Fact<'a>> {
    let mut out = Vec::new();
    match event {
        b"PeerStatus" => {
            // PJSIP's PeerStatus carries no address; chan_sip's and chan_iax2's do.
            if m.get("PeerStatus") != Some(b"Registered") {
                return out;
            }
            let (Some(peer), Some(addr)) = (m.get("Peer"), m.get("Address")) else {
                return out;
            };
            let source = match peer.iter().position(|&b| b == b'/') {
                Some(i) if peer[..i].eq_ignore_ascii_case(b"SIP") => Source::Sip,
                Some(i) if peer[..i].eq_ignore_ascii_case(b"IAX2") => Source::Iax2,
                _ => return out,
            };
            let account = &peer[peer.iter().position(|&b| b == b'/').map_or(0, |i| i + 1)..];
            out.extend(host_port(addr).map(|ip| Fact {
                net: IpNet::from(ip),
                account,
                source,
            }));
        }
        b"PeerEntry" => {
            let channel = m.get("Channeltype").or_else(|| m.get("ChannelType"));
            let dynamic = m
                .get("Dynamic")
                .is_some_and(|d| d.eq_ignore_ascii_case(b"yes"));
            let source = match channel {
                _ if !dynamic => Source::Trunk,
                Some(c) if c.eq_ignore_ascii_case(b"SIP") => Source::Sip,
                Some(c) if c.eq_ignore_ascii_case(b"IAX2") => Source::Iax2,
                _ => return out,
            };
            let (Some(name), Some(addr)) = (m.get("ObjectName"), m.get("IPaddress")) else {
                return out;
            };
            out.extend(host_port(addr).map(|ip| Fact {
                net: IpNet::from(ip),
                account: name,
                source,
            }));
        }
        b"ContactList" => {
            let (Some(endpoint), Some(via)) = (m.get("Endpoint"), m.get("ViaAddr")) else {
                return out;
            };
            out.extend(host_port(via).map(|ip| Fact {
                net: IpNet::from(ip),
                account: endpoint,
                source: Source::Contact,
            }));
        }
        b"IdentifyDetail" => {
            let Some(matches) = m.get("Match") else {
                return out;
            };
            let account = m
                .get("EndpointName")
                .or_else(|| m.get("Endpoint"))
                .unwrap_or(b"");
            for item in matches.split(|&b| b == b',').take(MAX_MATCHES) {
                if let Some(net) = acl_entry(item.trim_ascii()) {
                    out.push(Fact {
                        net,
                        account,
                        source: Source::Trunk,
                    });
                }
            }
        }
        _ => {}
    }
    out
}

/// `10.99.1.2`, `10.99.1.2:5060`, `2001:db8::2`, `[2001:db8::2]:5060`: the address, made
/// canonical; None for `-none-`, `(null)`, an unspecified address, or anything else.
fn host_port(v: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(v).ok()?.trim();
    let ip: IpAddr = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once(']')?.0.parse().ok()?
    } else if let Ok(ip) = text.parse() {
        ip
    } else {
        let (host, port) = text.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse().ok()?
    };
    let ip = canonical(ip);
    (!ip.is_unspecified() && !ip.is_multicast()).then_some(ip)
}

/// One entry of an Asterisk ACL as `ast_ha_join` writes it: `addr/netmask` (dotted),
/// `addr/len`, or a bare address. `!` marks the other sense: not a match, left out; so is
/// a network wider than `WIDEST_V4`/`WIDEST_V6`.
fn acl_entry(item: &[u8]) -> Option<IpNet> {
    if item.first() == Some(&b'!') {
        return None;
    }
    let text = std::str::from_utf8(item).ok()?;
    let (addr, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let ip = canonical(addr.parse::<IpAddr>().ok()?);
    let len = match (mask, ip) {
        (None, IpAddr::V4(_)) => 32,
        (None, IpAddr::V6(_)) => 128,
        (Some(m), _) if m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok()?,
        (Some(m), IpAddr::V4(_)) => {
            let bits = u32::from(m.parse::<std::net::Ipv4Addr>().ok()?);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return None;
            }
            bits.leading_ones() as u8
        }
        (Some(m), IpAddr::V6(_)) => {
            let bits = u128::from(m.parse::<std::net::Ipv6Addr>().ok()?);
            if bits.leading_ones() + bits.trailing_zeros() != 128 {
                return None;
            }
            bits.leading_ones() as u8
        }
    };
    let net = IpNet::new(ip, len).ok()?.trunc();
    let widest = if net.addr().is_ipv4() {
        WIDEST_V4
    } else {
        WIDEST_V6
    };
    (net.prefix_len() >= widest && !net.addr().is_unspecified()).then_some(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &[u8])]) -> Vec<(String, String, Source)> {
        let m = Message::from_pairs(pairs);
        let event = m.get("Event").unwrap();
        read(event, &m)
            .into_iter()
            .map(|f| {
                (
                    crate::addr::net_text(&f.net),
                    String::from_utf8_lossy(f.account).into_owned(),
                    f.source,
                )
            })
            .collect()
    }

    fn one(net: &str, account: &str, source: Source) -> Vec<(String, String, Source)> {
        vec![(net.to_string(), account.to_string(), source)]
    }

    #[test]
    fn the_forms_in_the_captures() {
        // sip-keepalive (Asterisk 20, chan_sip).
        assert_eq!(
            facts(&[
                ("Event", b"PeerStatus"),
                ("ChannelType", b"SIP"),
                ("Peer", b"SIP/1001"),
                ("PeerStatus", b"Registered"),
                ("Address", b"10.99.1.2:43454"),
            ]),
            one("10.99.1.2", "1001", Source::Sip)
        );
        // iax2-brute-authdebug: no port.
        assert_eq!(
            facts(&[
                ("Event", b"PeerStatus"),
                ("ChannelType", b"IAX2"),
                ("Peer", b"IAX2/2001"),
                ("PeerStatus", b"Registered"),
                ("Address", b"10.99.1.2"),
            ]),
            one("10.99.1.2", "2001", Source::Iax2)
        );
        // PJSIP's PeerStatus has no address.
        assert!(facts(&[
            ("Event", b"PeerStatus"),
            ("ChannelType", b"PJSIP"),
            ("Peer", b"PJSIP/1001"),
            ("PeerStatus", b"Reachable"),
        ])
        .is_empty());
        // sip-actions: SIPpeers.
        assert_eq!(
            facts(&[
                ("Event", b"PeerEntry"),
                ("Channeltype", b"SIP"),
                ("ObjectName", b"1001"),
                ("IPaddress", b"10.99.1.2"),
                ("IPport", b"50779"),
                ("Dynamic", b"yes"),
            ]),
            one("10.99.1.2", "1001", Source::Sip)
        );
        for none in [&b"-none-"[..], b"(null)", b"", b"0.0.0.0"] {
            assert!(facts(&[
                ("Event", b"PeerEntry"),
                ("Channeltype", b"IAX2"),
                ("ObjectName", b"2001"),
                ("IPaddress", none),
                ("Dynamic", b"yes"),
            ])
            .is_empty());
        }
        // A peer with a fixed host= is a trunk.
        assert_eq!(
            facts(&[
                ("Event", b"PeerEntry"),
                ("Channeltype", b"SIP"),
                ("ObjectName", b"provider"),
                ("IPaddress", b"198.51.100.7"),
                ("Dynamic", b"no"),
            ]),
            one("198.51.100.7", "provider", Source::Trunk)
        );
        // pjsip-actions: PJSIPShowContacts.
        assert_eq!(
            facts(&[
                ("Event", b"ContactList"),
                ("ObjectName", b"1001;@dca60464c1dd69ac0824abfeffd07cba"),
                ("ViaAddr", b"10.99.1.2"),
                ("Endpoint", b"1001"),
                ("Uri", b"sip:1001@192.0.2.99:48960;transport=udp"),
            ]),
            one("10.99.1.2", "1001", Source::Contact)
        );
        assert_eq!(
            facts(&[
                ("Event", b"PeerStatus"),
                ("ChannelType", b"SIP"),
                ("Peer", b"SIP/1001"),
                ("PeerStatus", b"Registered"),
                ("Address", b"[2001:db8:99::2]:5060"),
            ]),
            one("2001:db8:99::2", "1001", Source::Sip)
        );
    }

    #[test]
    fn a_trunks_match_list() {
        let got = facts(&[
            ("Event", b"IdentifyDetail"),
            ("ObjectName", b"provider-identify"),
            ("Endpoint", b"provider"),
            (
                "Match",
                b"198.51.100.7/255.255.255.255,203.0.113.0/255.255.255.0,!192.0.2.0/255.255.255.0,10.0.0.0/8,2001:db8:5::/48,0.0.0.0/0.0.0.0,1.2.3.4/255.0.255.0,garbage",
            ),
            ("EndpointName", b"provider"),
        ]);
        let nets: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(nets, ["198.51.100.7", "203.0.113.0/24", "2001:db8:5::/48"]);
        assert!(got
            .iter()
            .all(|(_, a, s)| a == "provider" && *s == Source::Trunk));
    }

    #[test]
    fn hostile_values_are_no_facts() {
        for addr in [
            &b"10.99.1.2:5060:1"[..],
            b"10.99.1.2;id",
            b"[10.99.1.2",
            b"224.0.0.1:5060",
            b"x",
        ] {
            assert!(
                facts(&[
                    ("Event", b"PeerStatus"),
                    ("Peer", b"SIP/1001"),
                    ("PeerStatus", b"Registered"),
                    ("Address", addr),
                ])
                .is_empty(),
                "{}",
                String::from_utf8_lossy(addr)
            );
        }
        assert!(facts(&[
            ("Event", b"PeerStatus"),
            ("Peer", b"Local/1001"),
            ("PeerStatus", b"Registered"),
            ("Address", b"10.99.1.2"),
        ])
        .is_empty());
    }

    #[test]
    fn only_observed_or_configured_addresses_prove_a_host() {
        assert!(Source::Login.proved() && Source::Iax2.proved() && Source::Trunk.proved());
        assert!(!Source::Sip.proved() && !Source::Contact.proved());
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
    }
}
