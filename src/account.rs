//! Account names as Asterisk reports them, reduced to the one thing scoring compares: the
//! user. chan_sip names an INVITE's challenge by its From URI (`sip:1001@10.99.1.1`, also
//! `"Desk" <sip:1001@pbx>`) where a REGISTER's says `1001`; both are account 1001.

/// Longest account name kept (`known.rs`, the database).
pub const MAX_NAME: usize = 64;

/// An account's user part as Ampere keeps it: at most `MAX_NAME` bytes, held in place (a
/// login remembered costs no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl Name {
    /// `user`, cut to `MAX_NAME` bytes.
    pub fn new(user: &[u8]) -> Name {
        let len = user.len().min(MAX_NAME);
        let mut bytes = [0; MAX_NAME];
        bytes[..len].copy_from_slice(&user[..len]);
        Name {
            len: len as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::log::printable(self))
    }
}

/// The user part of a SIP or SIPS URI (`sip:USER@host`, possibly inside `<...>` after a
/// display name, possibly with `;user-params`), or `raw` itself when it is not such a URI.
/// A URI without a user (`sip:host`) names no account: empty.
pub fn user(raw: &[u8]) -> &[u8] {
    // Plain names (`1001`, `<unknown>`) are nearly every account: one scan for a colon.
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return raw;
    };
    let scheme_start = match raw[..colon].iter().rposition(|&b| b == b'<') {
        Some(lt) => lt + 1,
        None => 0,
    };
    let scheme = &raw[scheme_start..colon];
    // Leading blanks before the scheme (`"Desk"  sip:...` is not a form Asterisk writes,
    // but a display name without angle brackets is none either): only a bare or bracketed
    // scheme counts.
    if !(scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips")) {
        return raw;
    }
    if scheme_start > 0 && !display_name_ok(&raw[..scheme_start - 1]) {
        return raw;
    }
    let rest = &raw[colon + 1..];
    // The URI ends at `>` or its headers (`?`); a `@` (never unescaped in parameters)
    // ends the user part, whose own parameters (`1001;phone-context=pbx`) go.
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'>' | b'?'))
        .unwrap_or(rest.len());
    let Some(at) = rest[..end].iter().position(|&b| b == b'@') else {
        // `sip:host`, `sip:host;transport=udp`: no user.
        return &[];
    };
    let user = &rest[..at];
    user.split(|&b| b == b';').next().unwrap_or(user)
}

/// What may stand before `<sip:...>`: nothing, or a display name (a quoted string or
/// words), followed by blanks.
fn display_name_ok(head: &[u8]) -> bool {
    let t = head.trim_ascii();
    t.is_empty() || (t.len() >= 2 && t[0] == b'"' && t[t.len() - 1] == b'"') || !t.contains(&b'<')
}

/// An account as the penalty table keeps it: a hash of its user part, 0 for none. The same
/// in every process, so that the Bloom filter's false positives (`table::Host::logged_in`)
/// fall on the same accounts in every run and `--replay` judges a capture as the daemon
/// does. A secret key would buy little: a collision only makes challenges free for accounts
/// of the same source address, never its failed passwords.
pub fn key(raw: &[u8]) -> u32 {
    if may_be_uri(raw) {
        hash(user(raw))
    } else {
        hash(raw)
    }
}

/// Whether `raw` has one of the shapes `user` reads (`sip:`/`sips:` first, or `<...>` last):
/// a plain name (`1001`), nearly every account, costs two compares instead of a scan.
fn may_be_uri(raw: &[u8]) -> bool {
    raw.last() == Some(&b'>')
        || raw
            .get(..4)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"sip:"))
        || raw
            .get(..5)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"sips:"))
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_finish(name: &[u8], h: u64) -> u32 {
    if name.is_empty() {
        0
    } else {
        ((h ^ (h >> 32)) as u32).max(1)
    }
}

/// FNV-1a of a user name (short names; SipHash cost as much as the rest of scoring); 0 for
/// none.
pub fn hash(user: &[u8]) -> u32 {
    let h = user.iter().fold(FNV_BASIS, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    fnv_finish(user, h)
}

/// A session (`SessionID`) as the penalty table keeps it, 16 bits, 0 for none: eight bytes
/// at a step (a PJSIP Call-ID is 20 to 40 bytes, hashed for every challenge and success).
/// Compared only within one process, and a collision can only make a success take back a
/// challenge of the host's own latest session, never a guess: any mixing will do.
pub fn session(id: &[u8]) -> u16 {
    if id.is_empty() {
        return 0;
    }
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ id.len() as u64;
    for chunk in id.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = crate::table::fold_mul(h ^ u64::from_le_bytes(word), 0x2d35_8dcc_aa6c_78a5);
    }
    let h = h ^ (h >> 32);
    ((h ^ (h >> 16)) as u16).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_chan_sip_writes_name_the_same_account() {
        for form in [
            &b"1001"[..],
            b"sip:1001@10.99.1.1",
            b"sip:1001@10.99.1.1:5060",
            b"SIP:1001@pbx.example",
            b"sips:1001@pbx.example;transport=tls",
            b"<sip:1001@10.99.1.1>",
            b"\"Desk phone\" <sip:1001@10.99.1.1>",
            b"Desk <sip:1001@10.99.1.1;transport=udp>",
            b"sip:1001;phone-context=pbx@10.99.1.1",
        ] {
            assert_eq!(user(form), b"1001", "{}", String::from_utf8_lossy(form));
            assert_eq!(key(form), key(b"1001"));
        }
    }

    #[test]
    fn what_is_not_a_sip_uri_stays_as_it_is() {
        for raw in [
            &b""[..],
            b"<unknown>",
            b"tel:+4912345",
            b"ampere",
            b"a:b",
            b"http://1001@x",
            b"x<y <sip:1001@h>",
        ] {
            assert_eq!(user(raw), raw, "{}", String::from_utf8_lossy(raw));
        }
        // A URI without a user names nobody.
        assert_eq!(user(b"sip:10.99.1.1"), b"");
        assert_eq!(user(b"sip:10.99.1.1;transport=udp"), b"");
        assert_eq!(key(b"sip:10.99.1.1"), 0);
        assert_eq!(key(b""), 0);
        assert_ne!(key(b"1001"), key(b"1002"));
        // The shortcut for plain names agrees with the two steps it stands for.
        for raw in [
            &b"1001"[..],
            b"sip:1001@h",
            b"<unknown>",
            b"a:b",
            b"\xff\x00",
            b"",
            b"Desk <sip:1001@h>",
            b"SIPS:1001@h",
        ] {
            assert_eq!(
                key(raw),
                hash(user(raw)),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn sessions_hash_apart() {
        assert_eq!(session(b""), 0);
        let ids = [
            "lbkxwkb3eo9h3eir@yskdvd",
            "lbkxwkb3eo9h3eir@yskdve",
            "0x7fa744006d00",
            "0x7fa744006d01",
            "a",
            "b",
        ];
        let hashes: std::collections::HashSet<u16> =
            ids.iter().map(|i| session(i.as_bytes())).collect();
        assert_eq!(hashes.len(), ids.len());
        assert!(!hashes.contains(&0));
    }
}
