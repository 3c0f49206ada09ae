//! Addresses and networks as Ampere handles them: parsed from text once into `IpNet`, IPv4
//! mapped into IPv6 taken as the IPv4 host, and printed in one canonical text form (the
//! database key, log lines, `-l`).

use crate::error::Invalid;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`, as a dual-stack Asterisk may report) is the IPv4
/// host: the kernel sees, and iptables must drop, IPv4 packets.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// `addr` or `addr/len`, IPv4 or IPv6; host bits are cleared (`10.1.2.3/8` = `10.0.0.0/8`),
/// and IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:10.0.0.0/104`) becomes the IPv4 network it
/// is: the kernel sees IPv4 packets from it, and the loopback guard must see 127.0.0.1.
pub fn parse_net(v: &str) -> Result<IpNet, Invalid> {
    let net = if v.contains('/') {
        IpNet::from_str(v).map_err(|_| format!("`{v}` is not an address or network"))?
    } else {
        IpNet::from(IpAddr::from_str(v).map_err(|_| format!("`{v}` is not an address or network"))?)
    };
    Ok(canonical_net(net.trunc()))
}

/// `canonical` for networks: a mapped IPv6 network of /96 or longer is IPv4.
pub fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => {
                IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).expect("a prefix of at most 32")
            }
            None => net,
        },
        _ => net,
    }
}

/// Whether `net` is a single address (/32, /128).
pub fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// Canonical text of a ban: a bare address for a host, `net/len` otherwise (also what an
/// nft hash set takes as an element).
pub fn net_text(net: &IpNet) -> String {
    if is_host(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// A LAN address: IPv4 private or link-local, IPv6 unique-local (fc00::/7) or link-local
/// (fe80::/10). Those are scored, banned and escalated one by one whatever the prefix
/// settings: every host of a link shares fe80::/64, and a LAN's /64 or /24 holds the
/// office's phones, not an internet attacker's other addresses.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

/// Addresses scored, banned and escalated one by one whatever the prefix settings: the LAN
/// (`is_lan`), and IPv6 addresses whose /64 is no one customer's: NAT64's well-known prefix
/// (64:ff9b::/96, each address an IPv4 host) and Teredo (2001::/32, each address a tunnel of
/// another host).
pub fn scored_alone(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => is_lan(ip),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            is_lan(ip)
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4])
                || (s[0] == 0x2001 && s[1] == 0)
        }
    }
}

/// What no host sends from: multicast (IPv4, IPv6), the limited broadcast, unspecified.
const NOT_UNICAST: [(bool, u128, u8); 5] = [
    (false, 0xe000_0000, 4),
    (false, 0xffff_ffff, 32),
    (false, 0, 32),
    (true, 0xff00 << 112, 8),
    (true, 0, 128),
];

/// Whether `net` is, or takes in, what no host sends from.
pub fn not_unicast(net: &IpNet) -> bool {
    let (v6, bits, width) = match net.network() {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32u32),
        IpAddr::V6(a) => (true, u128::from(a), 128),
    };
    NOT_UNICAST.iter().any(|&(f, base, len)| {
        // Overlap: they agree on the bits of the shorter prefix.
        let shorter = u32::from(len.min(net.prefix_len()));
        let mask =
            u128::MAX.checked_shl(width - shorter).unwrap_or(0) & (u128::MAX >> (128 - width));
        f == v6 && (bits ^ base) & mask == 0
    })
}

pub fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_scored_alone_and_what_is_no_host() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for a in [
            "10.1.2.3",
            "fd99:1::2",
            "fe80::1",
            "64:ff9b::c000:221",
            "2001:0:4136:e378::1",
        ] {
            assert!(scored_alone(ip(a)), "{a}");
        }
        for a in ["203.0.113.2", "2001:db8::1", "64:ff9b:1::1", "2001:1::1"] {
            assert!(!scored_alone(ip(a)), "{a}");
        }
        for a in [
            "224.0.0.1",
            "239.1.1.1",
            "255.255.255.255",
            "0.0.0.0",
            "ff02::1",
            "::",
        ] {
            assert!(not_unicast(&IpNet::from(ip(a))), "{a}");
        }
        for a in ["192.0.2.255", "0.0.0.1", "::1", "fe80::1"] {
            assert!(!not_unicast(&IpNet::from(ip(a))), "{a}");
        }
    }

    #[test]
    fn net_text_is_canonical() {
        assert_eq!(
            net_text(&"10.1.2.3/8".parse::<IpNet>().unwrap().trunc()),
            "10.0.0.0/8"
        );
        assert_eq!(
            net_text(&"2001:DB8:0::1/128".parse().unwrap()),
            "2001:db8::1"
        );
    }

    #[test]
    fn text_round_trips_through_parse() {
        for t in [
            "192.0.2.1",
            "198.51.100.0/24",
            "2001:db8::1",
            "2001:db8:5::/48",
        ] {
            assert_eq!(net_text(&parse_net(t).unwrap()), t);
        }
        assert_eq!(
            net_text(&parse_net("10.1.2.3/8").unwrap()),
            "10.0.0.0/8",
            "host bits cleared"
        );
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("-j ACCEPT").is_err());
    }

    #[test]
    fn mapped_networks_become_ipv4() {
        assert_eq!(
            net_text(&parse_net("::ffff:127.0.0.1").unwrap()),
            "127.0.0.1"
        );
        assert_eq!(net_text(&parse_net("::FFFF:1.2.3.5").unwrap()), "1.2.3.5");
        assert_eq!(
            net_text(&parse_net("::ffff:10.1.0.0/104").unwrap()),
            "10.0.0.0/8"
        );
        // Not mapped, or wider than the mapped range: stays IPv6.
        assert_eq!(
            net_text(&parse_net("::ffff:0:0/95").unwrap()),
            "::fffe:0:0/95"
        );
        assert_eq!(net_text(&parse_net("2001:db8::1").unwrap()), "2001:db8::1");
    }

    #[test]
    fn lan_addresses() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.9.9",
            "169.254.1.1",
            "fe80::66",
            "febf::1",
            "fd99:1::2",
            "fc00::1",
        ] {
            assert!(is_lan(a.parse().unwrap()), "{a}");
        }
        for a in ["203.0.113.2", "172.32.0.1", "fec0::1", "2001:db8::1", "::1"] {
            assert!(!is_lan(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(canonical(ip("::ffff:203.0.113.2")), ip("203.0.113.2"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
    }
}
