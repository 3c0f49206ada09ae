//! Turns an AMI message into a security event: its kind, service, account and the remote
//! host, parsed into an `IpAddr` with a PCRE2 pattern (JIT where available), as the original
//! Ampere matched with PCRE.

use std::net::IpAddr;

use pcre2::bytes::{CaptureLocations, Regex, RegexBuilder};

use crate::addr::canonical;
use crate::ami::{same_name, Message};
use crate::score::EventKind;

/// Asterisk's address format: `IPV4|IPV6 / [UDP|TCP|TLS|WS|WSS /] address / port`. IPv6 comes
/// without brackets; the address is everything between the optional transport and the
/// last `/` (addresses never contain `/`).
/// A link-local address may carry a zone (`fe80::1%eth0`): the address is scored and banned
/// (ip6tables matches it on every interface), the zone is dropped.
const REMOTE_ADDRESS: &str = r"^IPV([46])/(?:(?:UDP|TCP|TLS|WSS|WS)/)?\[?([0-9A-Fa-f:.]{2,45})(?:%[0-9A-Za-z._-]{1,32})?\]?/([0-9]{1,5})\z";

/// One scored security event. Its fields borrow the message they came from; the address is
/// made canonical once, here, and every later step relies on that.
#[derive(Clone, Copy, Debug)]
pub struct SecurityEvent<'a> {
    pub kind: EventKind,
    pub service: &'a [u8],
    pub account: &'a [u8],
    /// `SessionID`: chan_sip's dialog (Asterisk's own value), PJSIP's Call-ID (the
    /// client's): a success answers the challenges of its own session.
    pub session: &'a [u8],
    addr: IpAddr,
    /// The `EventTV` header, if the message had one (`--replay` scores by it).
    pub tv: Option<&'a [u8]>,
}

impl<'a> SecurityEvent<'a> {
    pub fn new(kind: EventKind, service: &'a [u8], account: &'a [u8], addr: IpAddr) -> Self {
        SecurityEvent {
            kind,
            service,
            account,
            session: b"",
            addr: canonical(addr),
            tv: None,
        }
    }

    /// The remote host, IPv4-mapped IPv6 already turned into IPv4.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
}

/// What `plain_remote` made of a value.
#[derive(Debug, PartialEq, Eq)]
pub enum Plain {
    Addr(IpAddr),
    /// Of the plain form, and `REMOTE_ADDRESS` would refuse it too.
    Invalid,
    /// Not of the plain form: for the pattern to decide.
    Unread,
}

/// The form Asterisk writes every day, `IPV4/UDP/203.0.113.2/5060` or
/// `IPV6/TCP/2001:db8::1/5060` (upper case, UDP, TCP or TLS, no brackets, no zone), read by
/// hand: the pattern costs more than the rest of an event's path together. Within that
/// form it answers exactly as `REMOTE_ADDRESS` does, which the pattern's own captures show:
/// the address is everything between the transport and the last `/`, the port one to five
/// digits, and the address must parse as the family says.
pub fn plain_remote(v: &[u8]) -> Plain {
    let (v6, rest) = match v.split_at_checked(9) {
        Some((head, rest)) if head[..3] == *b"IPV" && head[4] == b'/' && head[8] == b'/' => {
            let v6 = match head[3] {
                b'4' => false,
                b'6' => true,
                _ => return Plain::Unread,
            };
            if !matches!(&head[5..8], b"UDP" | b"TCP" | b"TLS") {
                return Plain::Unread;
            }
            (v6, rest)
        }
        _ => return Plain::Unread,
    };
    let Some(slash) = rest.iter().rposition(|&b| b == b'/') else {
        return Plain::Unread;
    };
    let (addr, port) = (&rest[..slash], &rest[slash + 1..]);
    let addr_ok = (2..=45).contains(&addr.len())
        && addr.iter().all(|&b| {
            b.is_ascii_digit() || b == b'.' || (v6 && (b == b':' || b.is_ascii_hexdigit()))
        });
    if !addr_ok || !(1..=5).contains(&port.len()) || !port.iter().all(u8::is_ascii_digit) {
        return Plain::Unread;
    }
    let ip = if v6 {
        crate::ip_text::v6(addr).map(IpAddr::V6)
    } else {
        crate::ip_text::v4(addr).map(IpAddr::V4)
    };
    ip.map_or(Plain::Invalid, Plain::Addr)
}

pub enum Parsed<'a> {
    /// Not one of the scored security events, nor one that tells who is registered
    /// (FullyBooted, Shutdown, Reload, ...).
    Other,
    /// Who is registered or configured where (`facts.rs`): PeerStatus, PeerEntry,
    /// ContactList, IdentifyDetail.
    Facts(Vec<crate::facts::Fact<'a>>),
    Security(SecurityEvent<'a>),
    /// A scored event whose RemoteAddress is missing or not an address.
    BadAddress {
        kind: EventKind,
        raw: &'a [u8],
    },
    /// A message with two of the headers Ampere reads (Event, Service, AccountID,
    /// RemoteAddress). Asterisk writes attacker-controlled fields before RemoteAddress, so
    /// "the first one wins" would be a door if CR/LF ever reached a field: dropped whole.
    Duplicate,
}

/// Which of the headers Ampere reads a name is: 0 to 3 are Event, Service, AccountID and
/// RemoteAddress, in `Matcher::parse`'s order; 4 is EventTV, when Asterisk wrote the event
/// (`--replay` scores by it; not a header the daemon judges by, so a second one is no
/// reason to drop the message: the first counts); 5 is SessionID (a second one could only
/// make a success forgive less, never more: the first counts). By length and first and last letters
/// first: a message has a dozen headers and most are none of these (Privilege, SessionID
/// and Challenge are as long as AccountID), so most names cost no comparison.
fn read_index(name: &[u8]) -> Option<usize> {
    let (first, last) = match name {
        [f, .., l] => (f.to_ascii_lowercase(), l.to_ascii_lowercase()),
        _ => return None,
    };
    let i = match (name.len(), first, last) {
        (5, b'e', b't') if same_name(name, b"Event") => 0,
        (7, b's', b'e') if same_name(name, b"Service") => 1,
        (9, b'a', b'd') if same_name(name, b"AccountID") => 2,
        (13, b'r', b's') if same_name(name, b"RemoteAddress") => 3,
        (7, b'e', b'v') if same_name(name, b"EventTV") => 4,
        (9, b's', b'd') if same_name(name, b"SessionID") => 5,
        _ => return None,
    };
    Some(i)
}

pub struct Matcher {
    remote: Regex,
    locs: CaptureLocations,
}

impl Matcher {
    pub fn new() -> Matcher {
        let remote = RegexBuilder::new()
            .jit_if_available(true)
            .caseless(true)
            .build(REMOTE_ADDRESS)
            .expect("REMOTE_ADDRESS is a valid pattern");
        let locs = remote.capture_locations();
        Matcher { remote, locs }
    }

    /// The remote host of a `RemoteAddress` value, as written (see `SecurityEvent::new`).
    /// Asterisk's everyday form goes by `plain_remote`; whatever that does not read, the
    /// pattern decides.
    pub fn remote_address(&mut self, v: &[u8]) -> Option<IpAddr> {
        match plain_remote(v) {
            Plain::Addr(ip) => Some(ip),
            Plain::Invalid => None,
            Plain::Unread => self.remote_address_by_pattern(v),
        }
    }

    /// `remote_address` by the PCRE2 pattern alone (the fuzz target checks that the plain
    /// reading never disagrees with it).
    pub fn remote_address_by_pattern(&mut self, v: &[u8]) -> Option<IpAddr> {
        self.remote.captures_read(&mut self.locs, v).ok()??;
        let (fs, _) = self.locs.get(1)?;
        let (s, e) = self.locs.get(2)?;
        let ip: IpAddr = std::str::from_utf8(&v[s..e]).ok()?.parse().ok()?;
        match (v[fs], ip) {
            (b'4', IpAddr::V4(_)) | (b'6', IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }

    pub fn parse<'a>(&mut self, m: &Message<'a>) -> Parsed<'a> {
        // One pass over the headers for the four Ampere reads, noticing any twice.
        let mut found: [Option<&[u8]>; 4] = [None; 4];
        let mut tv = None;
        let mut session = None;
        for (name, value) in m.headers() {
            match read_index(name) {
                None => {}
                Some(4) => tv = tv.or(Some(value)),
                Some(5) => session = session.or(Some(value)),
                Some(i) if found[i].replace(value).is_some() => return Parsed::Duplicate,
                Some(_) => {}
            }
        }
        let [event, service, account, remote] = found;
        let Some(kind) = event.and_then(EventKind::from_event) else {
            return match event {
                Some(name) if crate::facts::is_fact_event(name) => {
                    Parsed::Facts(crate::facts::read(name, m))
                }
                _ => Parsed::Other,
            };
        };
        let raw = remote.unwrap_or(b"");
        match self.remote_address(raw) {
            Some(addr) => Parsed::Security(SecurityEvent {
                tv,
                session: session.unwrap_or(b""),
                ..SecurityEvent::new(kind, service.unwrap_or(b""), account.unwrap_or(b""), addr)
            }),
            None => Parsed::BadAddress { kind, raw },
        }
    }
}

impl Default for Matcher {
    fn default() -> Matcher {
        Matcher::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra(v: &str) -> Option<String> {
        Matcher::new()
            .remote_address(v.as_bytes())
            .map(|a| canonical(a).to_string())
    }

    #[test]
    fn remote_address_variants() {
        assert_eq!(
            ra("IPV4/UDP/203.0.113.2/5060").as_deref(),
            Some("203.0.113.2")
        );
        assert_eq!(ra("IPV4/TCP/127.0.0.1/34642").as_deref(), Some("127.0.0.1"));
        assert_eq!(ra("IPV4/203.0.113.2/5060").as_deref(), Some("203.0.113.2"));
        assert_eq!(
            ra("IPV6/UDP/2001:db8:99::2/5060").as_deref(),
            Some("2001:db8:99::2")
        );
        assert_eq!(ra("IPV6/fd99:1::2/45174").as_deref(), Some("fd99:1::2"));
        assert_eq!(ra("IPV6/TLS/::1/5061").as_deref(), Some("::1"));
        assert_eq!(
            ra("IPV6/WSS/[2001:db8::7]/8089").as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(
            ra("IPV6/UDP/::ffff:198.51.100.4/5060").as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(ra("ipv4/ws/192.0.2.9/80").as_deref(), Some("192.0.2.9"));
        // A link-local address with its zone: scored on the address (was ignored: fail-open).
        assert_eq!(ra("IPV6/UDP/fe80::1%eth0/5060").as_deref(), Some("fe80::1"));
        assert_eq!(
            ra("IPV6/UDP/[fe80::2%br-lan]/5060").as_deref(),
            Some("fe80::2")
        );
    }

    #[test]
    fn remote_address_garbage() {
        for bad in [
            "",
            "IPV4/UDP/203.0.113.2",
            "IPV4/UDP/203.0.113.2/5060/extra",
            "IPV4/SCTP/203.0.113.2/5060",
            "IPV6/UDP/203.0.113.2/5060",
            "IPV4/UDP/2001:db8::1/5060",
            "IPV4/UDP/1.2.3.4;touch /tmp/x/5060",
            "IPV4/UDP/$(id)/5060",
            "IPV4/UDP/`id`/5060",
            "IPV4/UDP/999.1.1.1/5060",
            "IPV4/UDP/203.0.113.2/5060\n",
            "IPV4/UDP/203.0.113.2/506000",
            "IPV6/UDP/fe80::1%/5060",
            "IPV6/UDP/fe80::1%eth0;id/5060",
            "IPV4/UDP/203.0.113.2%eth0/5060x",
            "garbage",
        ] {
            assert_eq!(ra(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_plain_reading_agrees_with_the_pattern() {
        let mut mt = Matcher::new();
        let mut plain = 0;
        for family in ["IPV4", "IPV6", "ipv4", "IPV5"] {
            for transport in ["UDP/", "TCP/", "TLS/", "WS/", "udp/", "", "UDPX/"] {
                for addr in [
                    "203.0.113.2",
                    "0.0.0.0",
                    "1.2.3",
                    "01.2.3.4",
                    "1.2.3.4.",
                    "256.1.1.1",
                    "1..2.3",
                    "9",
                    "2001:db8::1",
                    "::",
                    "::ffff:1.2.3.4",
                    "2001:DB8::A",
                    "fe80::1%eth0",
                    "[2001:db8::7]",
                    "1.2.3.4:5",
                    "g::1",
                    "",
                    "1234567890123456789012345678901234567890123456",
                ] {
                    for port in ["5060", "0", "99999", "123456", "", "5060\n", "50a"] {
                        let v = format!("{family}/{transport}{addr}/{port}").replace("\\n", "\n");
                        let want = mt.remote_address_by_pattern(v.as_bytes());
                        match plain_remote(v.as_bytes()) {
                            Plain::Addr(ip) => {
                                plain += 1;
                                assert_eq!(Some(ip), want, "{v}")
                            }
                            Plain::Invalid => assert_eq!(None, want, "{v}"),
                            Plain::Unread => {}
                        }
                        assert_eq!(mt.remote_address(v.as_bytes()), want, "{v}");
                    }
                }
            }
        }
        // The everyday forms are read by hand, not left to the pattern.
        assert!(plain >= 40, "{plain}");
    }

    #[test]
    fn a_second_header_that_ampere_reads_drops_the_message() {
        let mut mt = Matcher::new();
        for dup in [
            "RemoteAddress",
            "Event",
            "Service",
            "AccountID",
            "remoteaddress",
        ] {
            let m = Message::from_pairs(&[
                ("Event", b"InvalidAccountID"),
                ("Service", b"PJSIP"),
                ("AccountID", b"9999"),
                ("RemoteAddress", b"IPV4/UDP/203.0.113.2/5060"),
                (dup, b"IPV4/UDP/127.0.0.1/5060"),
            ]);
            assert!(matches!(mt.parse(&m), Parsed::Duplicate), "{dup}");
        }
        // Headers Ampere does not read may repeat.
        let m = Message::from_pairs(&[
            ("Event", b"InvalidAccountID"),
            ("Challenge", b"a"),
            ("Challenge", b"b"),
            ("RemoteAddress", b"IPV4/UDP/203.0.113.2/5060"),
        ]);
        assert!(matches!(mt.parse(&m), Parsed::Security(_)));
    }

    #[test]
    fn parse_event() {
        let mut mt = Matcher::new();
        let m = Message::from_pairs(&[
            ("Event", b"InvalidAccountID"),
            ("Service", b"PJSIP"),
            ("AccountID", b"9999"),
            ("RemoteAddress", b"IPV4/UDP/203.0.113.2/60615"),
        ]);
        match mt.parse(&m) {
            Parsed::Security(e) => {
                assert_eq!(e.kind, EventKind::InvalidAccountID);
                assert_eq!(e.service, b"PJSIP");
                assert_eq!(e.account, b"9999");
                assert_eq!(e.addr().to_string(), "203.0.113.2");
            }
            _ => panic!("not parsed"),
        }
        let other = Message::from_pairs(&[("Event", b"FullyBooted")]);
        assert!(matches!(mt.parse(&other), Parsed::Other));
        let mapped = Message::from_pairs(&[
            ("Event", b"FailedACL"),
            ("RemoteAddress", b"IPV6/UDP/::ffff:198.51.100.4/5060"),
        ]);
        match mt.parse(&mapped) {
            Parsed::Security(e) => assert_eq!(e.addr().to_string(), "198.51.100.4"),
            _ => panic!("not parsed"),
        }
        let bad =
            Message::from_pairs(&[("Event", b"FailedACL"), ("RemoteAddress", b"IPV4/UDP/x/1")]);
        assert!(matches!(
            mt.parse(&bad),
            Parsed::BadAddress {
                kind: EventKind::FailedACL,
                ..
            }
        ));
    }
}
