//! Turns an AMI message into a security event: its kind, service, account and the remote
//! host, parsed into an `IpAddr` with a PCRE2 pattern (JIT where available), as the original
//! Ampere matched with PCRE.

use std::net::IpAddr;

use pcre2::bytes::{CaptureLocations, Regex, RegexBuilder};

use crate::addr::canonical;
use crate::ami::{same_name, Message};
use crate::score::{EventKind, Evidence};

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
    /// Whether the event proves that its source receives the PBX's answers
    /// (`score::Evidence`). `new` makes it strong; `Matcher::parse` reads it.
    pub evidence: Evidence,
    /// A `FailedACL` whose `ACLName` is one of the registrar's refusals
    /// (`REGISTRAR_REFUSALS`): Asterisk's policy on an authenticated REGISTER, named here.
    pub registrar: Option<RegistrarRefusal>,
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
            evidence: Evidence::Strong,
            registrar: None,
        }
    }

    /// The remote host, IPv4-mapped IPv6 already turned into IPv4.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
}

/// Whether a `RemoteAddress` that `Matcher::remote_address` read names a transport whose
/// handshake proves the source: TCP, TLS, WS, WSS. UDP, or no transport, does not.
#[inline]
pub fn transport_proves(raw: &[u8]) -> bool {
    // `IPV4/` or `IPV6/`, then the transport up to the next `/` (none: the address). UDP,
    // nearly every event, first.
    if raw.get(5..9) == Some(b"UDP/") {
        return false;
    }
    let rest = raw.get(5..).unwrap_or_default();
    let t = &rest[..rest.iter().position(|&b| b == b'/').unwrap_or(0)];
    [&b"TCP"[..], b"TLS", b"WS", b"WSS"]
        .iter()
        .any(|p| t.eq_ignore_ascii_case(p))
}

/// The values of the headers `names` in `m`, each where it is given exactly once (twice,
/// it counts as absent: the safe reading). Read by a second pass over the headers only for
/// the events that need them (chan_sip's `InvalidPassword`, `FailedACL`): nearly every
/// PJSIP event has a `Challenge` header, and noting it in the first pass cost a replay 1 %.
fn once<'a, const N: usize>(m: &Message<'a>, names: [&[u8]; N]) -> [Option<&'a [u8]>; N] {
    let mut found: [(Option<&'a [u8]>, u8); N] = [(None, 0); N];
    for (name, value) in m.headers() {
        if let Some(i) = names.iter().position(|n| same_name(name, n)) {
            found[i] = (Some(value), found[i].1.saturating_add(1));
        }
    }
    found.map(|(v, n)| v.filter(|_| n == 1))
}

/// What an event of `m` proves of its source (`score::Evidence`). chan_sip's
/// `InvalidPassword` is strong when its `Challenge` (the nonce it issued in the dialog) is
/// its `ReceivedChallenge` (the one the answer carried).
fn evidence(m: &Message<'_>, kind: EventKind, service: &[u8], raw: &[u8]) -> Evidence {
    let nonce_seen = || {
        kind == EventKind::InvalidPassword
            && same_name(service, b"SIP")
            && matches!(
                once(m, [b"Challenge", b"ReceivedChallenge"]),
                [Some(c), Some(r)] if !c.is_empty() && c == r
            )
    };
    if kind == EventKind::SuccessfulAuth
        || transport_proves(raw)
        || same_name(service, b"AMI")
        || nonce_seen()
    {
        Evidence::Strong
    } else {
        Evidence::Weak
    }
}

/// The `ACLName`s res_pjsip_registrar gives a REGISTER it refuses after authenticating it:
/// a contact limit, contacts it cannot take, an endpoint without AORs, a To it cannot read.
/// Asterisk's configuration speaking, not an attacker's guess.
pub const REGISTRAR_REFUSALS: [&str; 4] = [
    "registrar_attempt_exceeds_maximum_configured_contacts",
    "registrar_invalid_contacts_provided",
    "registrar_attempt_without_configured_aors",
    "registrar_invalid_uri_in_to_received",
];

/// One of `REGISTRAR_REFUSALS`, in a byte (an event is copied along the pipeline: a
/// `&str` here cost the replay 1 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarRefusal(u8);

impl RegistrarRefusal {
    /// The refusal whose `ACLName` is `acl`, if it is one of the registrar's.
    pub fn of(acl: &[u8]) -> Option<RegistrarRefusal> {
        REGISTRAR_REFUSALS
            .iter()
            .position(|r| r.as_bytes() == acl)
            .map(|i| RegistrarRefusal(i as u8))
    }

    pub fn name(self) -> &'static str {
        REGISTRAR_REFUSALS[usize::from(self.0)]
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
/// make a success forgive less, never more: the first counts). By
/// length and first and last letters first: a message has a dozen headers and most are
/// none of these (Privilege is as long as Service), so most names cost no comparison.
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
        let service = service.unwrap_or(b"");
        match self.remote_address(raw) {
            Some(addr) => Parsed::Security(SecurityEvent {
                tv,
                session: session.unwrap_or(b""),
                evidence: evidence(m, kind, service, raw),
                registrar: (kind == EventKind::FailedACL)
                    .then(|| once(m, [b"ACLName"])[0])
                    .flatten()
                    .and_then(RegistrarRefusal::of),
                ..SecurityEvent::new(kind, service, account.unwrap_or(b""), addr)
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
mod tests;
