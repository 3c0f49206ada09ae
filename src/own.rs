//! The PBX's own networks, read from the kernel: every address on the machine's interfaces
//! is never banned (like loopback and the AMI host), and every prefix on its links is never
//! banned as a whole (a ban of a network that takes one in would cut off every phone on the
//! link, the PBX's own replies with them): such a network is scored address by address.
//!
//! Read at start and again every `REFRESH` (a router's prefix delegation changes, an
//! address is added): one getifaddrs(3) call, a netlink dump the kernel answers at once.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::addr::canonical;

/// How often the interfaces are read again: an address added while Ampere runs is the
/// PBX's own within this.
pub const REFRESH: Duration = Duration::from_secs(10);

/// One of the PBX's own addresses or link prefixes, where, and since when (unix seconds)
/// Ampere has seen it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Own {
    pub net: IpNet,
    pub interface: String,
    pub since: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnNets {
    /// Every address of every interface (loopback's too).
    pub addrs: Vec<Own>,
    /// The prefix of every address wider than one host, loopback's left out.
    pub links: Vec<Own>,
}

/// More than any PBX has; beyond, the rest are not kept (logged by the caller).
const MAX_ENTRIES: usize = 256;

impl OwnNets {
    /// What `interfaces` (as `sys::interface_addresses` gives them) hold now, at `now`;
    /// what was seen before keeps its first time. Returns whether anything changed.
    pub fn update(&mut self, interfaces: &[(String, IpAddr, u8)], now: i64) -> bool {
        let mut addrs = Vec::new();
        let mut links = Vec::new();
        for (name, ip, len) in interfaces.iter().take(MAX_ENTRIES) {
            let ip = canonical(*ip);
            if crate::addr::not_unicast(&IpNet::from(ip)) {
                continue;
            }
            let since = |list: &[Own], net: &IpNet| {
                list.iter()
                    .find(|o| o.net == *net && o.interface == *name)
                    .map_or(now, |o| o.since)
            };
            let host = IpNet::from(ip);
            addrs.push(Own {
                net: host,
                interface: name.clone(),
                since: since(&self.addrs, &host),
            });
            let Ok(link) = IpNet::new(ip, *len).map(|n| n.trunc()) else {
                continue;
            };
            if link.prefix_len() < host.prefix_len() && !ip.is_loopback() {
                if links.iter().any(|o: &Own| o.net == link) {
                    continue;
                }
                links.push(Own {
                    net: link,
                    interface: name.clone(),
                    since: since(&self.links, &link),
                });
            }
        }
        let changed = addrs != self.addrs || links != self.links;
        self.addrs = addrs;
        self.links = links;
        changed
    }

    /// Reads the interfaces now.
    pub fn read(&mut self, now: i64) -> std::io::Result<bool> {
        Ok(self.update(&crate::sys::interface_addresses()?, now))
    }

    /// The addresses to protect (loopback is protected as such already).
    pub fn addr_nets(&self) -> Vec<IpNet> {
        self.addrs
            .iter()
            .map(|o| o.net)
            .filter(|n| !n.addr().is_loopback())
            .collect()
    }

    pub fn link_nets(&self) -> Vec<IpNet> {
        self.links.iter().map(|o| o.net).collect()
    }

    /// `eth0 2001:db8:a3e::2, ...` for a log line (loopback left out).
    pub fn describe(&self) -> String {
        let part = |list: &[Own]| -> Vec<String> {
            list.iter()
                .filter(|o| !o.net.addr().is_loopback())
                .map(|o| format!("{} {}", o.interface, crate::addr::net_text(&o.net)))
                .collect()
        };
        format!(
            "addresses {}; links {}",
            part(&self.addrs).join(", "),
            part(&self.links).join(", ")
        )
    }

    /// What covers `ip`: its own address, or else a link it is on.
    pub fn of(&self, ip: IpAddr) -> (Option<&Own>, Option<&Own>) {
        let ip = canonical(ip);
        (
            self.addrs.iter().find(|o| o.net.contains(&ip)),
            self.links.iter().find(|o| o.net.contains(&ip)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs(list: &[(&str, &str, u8)]) -> Vec<(String, IpAddr, u8)> {
        list.iter()
            .map(|(n, a, l)| (n.to_string(), a.parse().unwrap(), *l))
            .collect()
    }

    #[test]
    fn addresses_and_links_from_the_interfaces() {
        let mut o = OwnNets::default();
        assert!(o.update(
            &ifs(&[
                ("lo", "127.0.0.1", 8),
                ("lo", "::1", 128),
                ("eth0", "192.0.2.2", 24),
                ("eth0", "2001:db8:a3e::2", 64),
                ("eth0", "fe80::1", 64),
                ("eth0", "2001:db8:a3e::3", 64),
                ("ppp0", "198.51.100.9", 32),
            ]),
            100
        ));
        let addrs: Vec<String> = o.addrs.iter().map(|a| a.net.to_string()).collect();
        assert_eq!(addrs.len(), 7);
        let links: Vec<String> = o.links.iter().map(|a| a.net.to_string()).collect();
        assert_eq!(links, ["192.0.2.0/24", "2001:db8:a3e::/64", "fe80::/64"]);
        let (addr, link) = o.of("2001:db8:a3e::50".parse().unwrap());
        assert!(addr.is_none());
        assert_eq!(link.unwrap().interface, "eth0");
        // Read again later: the same, nothing changed, first times kept; a new address
        // is new from now.
        assert!(!o.update(
            &ifs(&[
                ("lo", "127.0.0.1", 8),
                ("lo", "::1", 128),
                ("eth0", "192.0.2.2", 24),
                ("eth0", "2001:db8:a3e::2", 64),
                ("eth0", "fe80::1", 64),
                ("eth0", "2001:db8:a3e::3", 64),
                ("ppp0", "198.51.100.9", 32),
            ]),
            200
        ));
        assert!(o.update(
            &ifs(&[("eth0", "192.0.2.2", 24), ("eth0", "192.0.2.7", 24)]),
            300
        ));
        let (a, _) = o.of("192.0.2.7".parse().unwrap());
        assert_eq!(a.unwrap().since, 300);
        let (a, _) = o.of("192.0.2.2".parse().unwrap());
        assert_eq!(a.unwrap().since, 100);
    }

    #[test]
    fn this_machine_has_at_least_loopback() {
        let mut o = OwnNets::default();
        o.read(1).unwrap();
        assert!(o.addrs.iter().any(|a| a.net.addr().is_loopback()), "{o:?}");
    }
}
