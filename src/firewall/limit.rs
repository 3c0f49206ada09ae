//! A per-source packet limit on the SIP ports, put at the head of Ampere's chain or table: the
//! blind guard (while Ampere is not logged in to AMI and cannot see attacks) and the flood
//! guard (`flood`, always, for what AMI never reports). The rules are text for the tools;
//! every address in them is an `IpNet` parsed before.

use std::fmt;

use ipnet::{IpNet, Ipv6Net};

/// Which guard a limit is: it names the kernel's hash tables, so that one never inherits
/// the other's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    Blind,
    Flood,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Blind => "blind guard",
            LimitKind::Flood => "flood guard",
        })
    }
}

/// Every source outside `exempt` may send at most `rate` packets per second (after a
/// `burst`) to the SIP ports. IPv4 sources are counted per address, IPv6 ones per
/// `v6_prefix` (the scoring prefix), except LAN addresses, which are counted one by one:
/// every host of a link shares fe80::/64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipLimit {
    pub kind: LimitKind,
    pub rate: u32,
    pub burst: u32,
    /// Trusted networks, loopback and the AMI host, merged where they overlap.
    pub exempt: Vec<IpNet>,
    pub v6_prefix: u8,
}

/// The IPv6 LAN ranges (unique-local, link-local), as in `addr::is_lan`.
fn lan_v6() -> [IpNet; 2] {
    [
        "fc00::/7".parse().expect("a valid network"),
        "fe80::/10".parse().expect("a valid network"),
    ]
}

impl SipLimit {
    pub fn new(
        kind: LimitKind,
        (rate, burst): (u32, u32),
        exempt: &[IpNet],
        v6_prefix: u8,
    ) -> Self {
        SipLimit {
            kind,
            rate,
            burst,
            exempt: IpNet::aggregate(&exempt.to_vec()),
            v6_prefix,
        }
    }

    /// The exempt networks of one family.
    pub fn exempt(&self, v6: bool) -> impl Iterator<Item = &IpNet> {
        self.exempt
            .iter()
            .filter(move |n| crate::addr::is_v6(n) == v6)
    }

    /// Whether IPv6 sources are counted per network, and so LAN ones need rules of their own.
    fn v6_masked(&self) -> bool {
        self.v6_prefix < 128
    }

    /// A `hashlimit` table name (at most 15 characters) that differs with the kind, the
    /// family part and the rate: rules of one name share one kernel table and its settings,
    /// and the old rule may not be gone yet when the new one is checked.
    fn hashlimit_name(&self, part: char) -> String {
        let k = match self.kind {
            LimitKind::Blind => 'b',
            LimitKind::Flood => 'f',
        };
        let h = (u64::from(self.rate) * 1_000_003
            + u64::from(self.burst) * 7
            + u64::from(self.v6_prefix))
            % 0xffff;
        format!("ampere-{k}{part}-{h:04x}")
    }

    /// The `hashlimit` name of a family's last rule: its presence in a listing shows the
    /// limit is in place.
    pub fn main_hashlimit_name(&self, v6: bool) -> String {
        self.hashlimit_name(if v6 { '6' } else { '4' })
    }

    fn hashlimit(&self, part: char, srcmask: Option<u8>) -> String {
        format!(
            "-m hashlimit --hashlimit-above {}/sec --hashlimit-burst {} --hashlimit-mode srcip{} --hashlimit-name {} -j DROP",
            self.rate,
            self.burst,
            srcmask.map(|m| format!(" --hashlimit-srcmask {m}")).unwrap_or_default(),
            self.hashlimit_name(part)
        )
    }

    /// The rules of one iptables family, in chain order (each the part after `-A CHAIN `):
    /// exempt sources return, LAN IPv6 sources are limited one by one, the rest per source.
    pub fn iptables_rules(&self, v6: bool) -> Vec<String> {
        let mut rules: Vec<String> = self
            .exempt(v6)
            .map(|n| format!("-s {n} -j RETURN"))
            .collect();
        if !v6 {
            rules.push(self.hashlimit('4', None));
            return rules;
        }
        if self.v6_masked() {
            for lan in lan_v6() {
                rules.push(format!("-s {lan} {}", self.hashlimit('l', None)));
                rules.push(format!("-s {lan} -j RETURN"));
            }
            rules.push(self.hashlimit('6', Some(self.v6_prefix)));
        } else {
            rules.push(self.hashlimit('6', None));
        }
        rules
    }

    /// The statements of the nft table's `guard` chain for one family, one per line; `ports`
    /// is the port list as nft reads it (`5060, 5061`).
    pub fn nft_rules(&self, v6: bool, ports: &str) -> Vec<String> {
        let (family, set) = if v6 {
            ("ip6", "guard6")
        } else {
            ("ip", "guard4")
        };
        let exempt: Vec<String> = self.exempt(v6).map(|n| n.to_string()).collect();
        let mut rules = Vec::new();
        if !exempt.is_empty() {
            rules.push(format!("{family} saddr {{ {} }} return", exempt.join(", ")));
        }
        let limited = |from: &str, mask: &str| {
            format!(
                "{from}meta l4proto {{ tcp, udp }} th dport {{ {ports} }} update @{set} {{ {family} saddr{mask} limit rate over {}/second burst {} packets }} drop",
                self.rate, self.burst
            )
        };
        if v6 && self.v6_masked() {
            let lan: Vec<String> = lan_v6().iter().map(IpNet::to_string).collect();
            let from = format!("ip6 saddr {{ {} }} ", lan.join(", "));
            rules.push(limited(&from, ""));
            rules.push(format!("{from}return"));
            let mask = Ipv6Net::new(std::net::Ipv6Addr::UNSPECIFIED, self.v6_prefix)
                .expect("a prefix of at most 128")
                .netmask();
            rules.push(limited("", &format!(" & {mask}")));
        } else {
            rules.push(limited("", ""));
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(kind: LimitKind, rate: u32, prefix: u8) -> SipLimit {
        let exempt: Vec<IpNet> = ["192.0.2.0/24", "192.0.2.7/32", "2001:db8::/32"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        SipLimit::new(kind, (rate, 2 * rate), &exempt, prefix)
    }

    #[test]
    fn exempt_networks_come_first_and_merged() {
        let l = limit(LimitKind::Flood, 50, 64);
        let r4 = l.iptables_rules(false);
        assert_eq!(r4[0], "-s 192.0.2.0/24 -j RETURN");
        assert_eq!(r4.len(), 2, "{r4:?}");
        assert!(r4[1].contains("--hashlimit-above 50/sec --hashlimit-burst 100"));
        assert!(!r4[1].contains("srcmask"), "IPv4 is counted per address");
        let n4 = l.nft_rules(false, "5060");
        assert_eq!(n4[0], "ip saddr { 192.0.2.0/24 } return");
    }

    #[test]
    fn ipv6_lan_sources_are_counted_one_by_one_and_the_rest_per_prefix() {
        let l = limit(LimitKind::Blind, 10, 48);
        let r6 = l.iptables_rules(true);
        assert_eq!(r6[0], "-s 2001:db8::/32 -j RETURN");
        assert!(r6[1].starts_with("-s fc00::/7 -m hashlimit") && !r6[1].contains("srcmask"));
        assert_eq!(r6[2], "-s fc00::/7 -j RETURN");
        assert!(r6[3].starts_with("-s fe80::/10 -m hashlimit"));
        assert!(r6[5].ends_with("-j DROP") && r6[5].contains("--hashlimit-srcmask 48"));
        let n6 = l.nft_rules(true, "5060, 5061");
        assert_eq!(n6[2], "ip6 saddr { fc00::/7, fe80::/10 } return");
        assert!(n6[3]
            .contains("ip6 saddr & ffff:ffff:ffff:: limit rate over 10/second burst 20 packets"));
        // Per address: no LAN rules, no mask.
        let single = limit(LimitKind::Blind, 10, 128);
        assert_eq!(single.iptables_rules(true).len(), 2);
        assert!(!single.nft_rules(true, "5060")[1].contains('&'));
    }

    #[test]
    fn hashlimit_names_fit_and_differ_by_kind_and_rate() {
        let names: Vec<String> = [
            limit(LimitKind::Blind, 10, 64),
            limit(LimitKind::Flood, 10, 64),
            limit(LimitKind::Flood, 11, 64),
            limit(LimitKind::Flood, 100_000, 64),
        ]
        .iter()
        .map(|l| l.hashlimit_name('l'))
        .collect();
        for (i, n) in names.iter().enumerate() {
            assert!(n.len() <= 15, "{n}");
            assert!(!names[..i].contains(n), "{names:?}");
        }
    }
}
