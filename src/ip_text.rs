//! IP address text to `Ipv4Addr`/`Ipv6Addr`, straight from bytes. The standard library's
//! parser is generic over its input and took most of an event's cost once the pattern was
//! out of the everyday path; this is the same grammar, step for step (`core::net::parser`:
//! no leading zeros in an IPv4 octet, one to four hex digits a group, at most one `::`
//! standing for at least one group, an embedded IPv4 address only as the last two groups),
//! and the tests and the `remote_address` fuzz target hold it to the standard library's
//! answers.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A cursor over the text; every `read_*` either consumes what it read or leaves `pos`
/// where it was.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    /// Whether the text has a `.` at all: without one, no group can start an embedded IPv4
    /// address, and trying at every group was most of the cost.
    dotted: bool,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn given(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// One group: one to four hex digits, leading zeros allowed.
    fn hex_group(&mut self) -> Option<u16> {
        let start = self.pos;
        let mut value = 0u32;
        while let Some(d) = self.peek().and_then(|c| char::from(c).to_digit(16)) {
            self.pos += 1;
            if self.pos - start > 4 {
                self.pos = start;
                return None;
            }
            value = value * 16 + d;
        }
        (self.pos > start).then_some(value as u16)
    }

    /// `sep` first unless this is the first item, then `item`; all or nothing.
    fn separated<T>(
        &mut self,
        sep: u8,
        first: bool,
        item: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let start = self.pos;
        let got = (|| {
            if !first {
                self.given(sep)?;
            }
            item(self)
        })();
        if got.is_none() {
            self.pos = start;
        }
        got
    }

    fn v4(&mut self) -> Option<Ipv4Addr> {
        let (a, end) = v4_at(self.s, self.pos)?;
        self.pos = end;
        Some(a)
    }

    /// Groups into `groups` until one does not read: how many, and whether the last two
    /// came from an embedded IPv4 address.
    fn groups(&mut self, groups: &mut [u16]) -> (usize, bool) {
        let limit = groups.len();
        for i in 0..limit {
            if self.dotted && i + 1 < limit {
                if let Some(v4) = self.separated(b':', i == 0, Cursor::v4) {
                    let [a, b, c, d] = v4.octets();
                    groups[i] = u16::from_be_bytes([a, b]);
                    groups[i + 1] = u16::from_be_bytes([c, d]);
                    return (i + 2, true);
                }
            }
            match self.separated(b':', i == 0, Cursor::hex_group) {
                Some(g) => groups[i] = g,
                None => return (i, false),
            }
        }
        (limit, false)
    }

    fn v6(&mut self) -> Option<Ipv6Addr> {
        let mut head = [0u16; 8];
        let (head_len, head_v4) = self.groups(&mut head);
        if head_len == 8 {
            return Some(Ipv6Addr::from(head));
        }
        if head_v4 {
            return None;
        }
        self.given(b':')?;
        self.given(b':')?;
        // `::` stands for at least one group.
        let mut tail = [0u16; 7];
        let (tail_len, _) = self.groups(&mut tail[..7 - head_len]);
        head[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
        Some(Ipv6Addr::from(head))
    }
}

/// The whole of `s` as an IPv4 address, as `str::parse::<Ipv4Addr>` reads it.
pub fn v4(s: &[u8]) -> Option<Ipv4Addr> {
    v4_at(s, 0).and_then(|(a, end)| (end == s.len()).then_some(a))
}

/// An IPv4 address at `s[i..]`, alone or embedded in an IPv6 text: four octets of one to
/// three digits, at most 255, no leading zero; and where it ends.
fn v4_at(s: &[u8], mut i: usize) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    for (n, o) in octets.iter_mut().enumerate() {
        if n > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut value = 0u32;
        while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
            value = value * 10 + u32::from(d - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        if i == start || value > 255 || (i - start > 1 && s[start] == b'0') {
            return None;
        }
        *o = value as u8;
    }
    Some((Ipv4Addr::from(octets), i))
}

/// The whole of `s` as an IPv6 address, as `str::parse::<Ipv6Addr>` reads it.
pub fn v6(s: &[u8]) -> Option<Ipv6Addr> {
    let mut c = Cursor {
        s,
        pos: 0,
        dotted: s.contains(&b'.'),
    };
    c.v6().filter(|_| c.pos == s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(s: &[u8]) {
        let text = std::str::from_utf8(s).ok();
        assert_eq!(v4(s), text.and_then(|t| t.parse().ok()), "v4 {:?}", text);
        assert_eq!(v6(s), text.and_then(|t| t.parse().ok()), "v6 {:?}", text);
    }

    #[test]
    fn known_texts() {
        for t in [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.0",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3.04",
            "0000.1.1.1",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4",
            "1.2.3.4::",
            "12345::",
            "0000:0::",
            "00000::",
            "2001:DB8::a",
            "fe80::1%eth0",
            ":1::",
            "1:",
            ":",
            "",
            "1.2.3.4:5",
            "::1.2.3.04",
            "::1.2.3",
            "1::2:3:4:5:6:7",
            "1::2:3:4:5:6:7:8",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            agree(t.as_bytes());
        }
    }

    #[test]
    fn random_texts_agree_with_the_standard_library() {
        // Strings of the characters addresses are made of, most of them near-valid.
        let alphabet = b"0123456789abcdefABCDEF:...::0019fg";
        let mut seed = 0x2545_f491u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[next() as usize % alphabet.len()])
                .collect();
            agree(&s);
        }
        // Valid addresses printed by the standard library, and mangled by one byte.
        for _ in 0..50_000 {
            let (a, b) = (next(), next());
            let text = if a % 2 == 0 {
                Ipv4Addr::from(b).to_string()
            } else {
                let mut g = [0u16; 8];
                for (i, x) in g.iter_mut().enumerate() {
                    // Runs of zeros, so that `::` and mapped forms show up.
                    *x = if (b >> i) & 1 == 0 { 0 } else { next() as u16 };
                }
                Ipv6Addr::from(g).to_string()
            };
            agree(text.as_bytes());
            assert!(
                v4(text.as_bytes()).is_some() || v6(text.as_bytes()).is_some(),
                "{text}"
            );
            let mut m = text.into_bytes();
            let i = next() as usize % m.len();
            m[i] = alphabet[next() as usize % alphabet.len()];
            agree(&m);
        }
    }
}
