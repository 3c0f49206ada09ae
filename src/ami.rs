//! The Asterisk Manager Interface wire format: a banner line, then messages of `Name: value`
//! header lines ending at an empty line. Lines end in CRLF (bare LF accepted). Everything in
//! a message may come from an attacker, so lines and messages are bounded and a violation
//! drops just that line or message without losing sync.

/// Longest line kept; a longer one is dropped up to its newline.
pub const MAX_LINE: usize = 4096;
/// Most headers kept in one message; a message with more is dropped whole.
pub const MAX_HEADERS: usize = 128;

/// One message, as a view: header names and values are raw bytes (not necessarily UTF-8) of
/// the data read, or of the framer's own buffer for a message that a read cut in two.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    headers: &'a [[u32; 4]], // name start and end, value start and end
}

impl<'a> Message<'a> {
    /// First header of that name (names compare case-insensitively, as Asterisk does).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find_map(|(n, v)| n.eq_ignore_ascii_case(name.as_bytes()).then_some(v))
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Every header as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let buf = self.buf;
        self.headers.iter().map(move |&[n, ne, v, ve]| {
            (&buf[n as usize..ne as usize], &buf[v as usize..ve as usize])
        })
    }

    /// An action response rather than an event: it has no `Event` header. (A security event
    /// such as ChallengeResponseFailed carries a `Response:` header that the attacker fills,
    /// so the presence of `Response` alone proves nothing.)
    pub fn is_response(&self) -> bool {
        self.get("Event").is_none() && self.get("Response").is_some()
    }

    /// A message of these headers (tests only: it leaks its few bytes to be `'static`).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &[u8])]) -> Message<'static> {
        let mut buf = Vec::new();
        let mut headers = Vec::new();
        for (n, v) in pairs {
            push_header(&mut buf, &mut headers, n.as_bytes(), v);
        }
        Message {
            buf: Vec::leak(buf),
            headers: Vec::leak(headers),
        }
    }
}

/// Two names equal in any ASCII case, as Asterisk compares header names. The exact match
/// (Asterisk's own spelling, as a rule) is tried first: against a constant, a few word
/// compares.
#[inline(always)]
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// Copies a header into `buf`, its offsets into `headers`.
fn push_header(buf: &mut Vec<u8>, headers: &mut Vec<[u32; 4]>, name: &[u8], value: &[u8]) {
    headers.push(copy_header(buf, name, value));
}

/// Appends name and value to `buf`; their offsets there.
fn copy_header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) -> [u32; 4] {
    let n = buf.len() as u32;
    buf.extend_from_slice(name);
    let v = buf.len() as u32;
    buf.extend_from_slice(value);
    [n, v, v, buf.len() as u32]
}

pub enum Item<'a> {
    Banner(&'a [u8]),
    Message(Message<'a>),
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramerStats {
    pub dropped_lines: u64,
    pub dropped_messages: u64,
}

/// Splits the stream into lines and messages. A message that lies whole in one `push` is
/// handed out in place (offsets into the data read, nothing copied: the common case); only
/// one that a read cuts in two is copied into `owned`, header by header. Nothing is
/// allocated per message once the buffers have grown.
pub struct Framer {
    /// The start of a line that the last read cut off.
    line: Vec<u8>,
    discarding: bool,
    banner_pending: bool,
    /// Offsets of the message's headers: into the data of this `push` while `carried` is
    /// false, into `owned` once it is true.
    headers: Vec<[u32; 4]>,
    owned: Vec<u8>,
    carried: bool,
    msg_overflow: bool,
    pub stats: FramerStats,
}

impl Framer {
    /// A framer for a fresh connection: the first line is the banner.
    pub fn new() -> Framer {
        Framer {
            line: Vec::with_capacity(256),
            discarding: false,
            banner_pending: true,
            headers: Vec::with_capacity(32),
            owned: Vec::new(),
            carried: false,
            msg_overflow: false,
            stats: FramerStats::default(),
        }
    }

    /// Feeds received bytes; calls `f` for the banner and for each complete message.
    pub fn push(&mut self, data: &[u8], f: &mut dyn FnMut(Item<'_>)) {
        // Header offsets are u32: a caller's slice past 4 GiB goes in pieces.
        for part in data.chunks(1 << 31) {
            self.push_part(part, f);
        }
    }

    fn push_part(&mut self, data: &[u8], f: &mut dyn FnMut(Item<'_>)) {
        let mut pos = 0;
        while pos < data.len() {
            let Some(i) = find_byte(&data[pos..], b'\n') else {
                self.append(&data[pos..]);
                break;
            };
            let (start, end) = (pos, pos + i);
            pos = end + 1;
            if self.line.is_empty() && !self.discarding {
                // The whole line is in this read: frame it in place.
                if i > MAX_LINE {
                    self.stats.dropped_lines += 1;
                    continue;
                }
                let end = end - usize::from(end > start && data[end - 1] == b'\r');
                // The everyday line, a header of a message that lies in this read, is
                // taken here; `line_done` has every other case.
                let everyday = end > start
                    && !self.banner_pending
                    && !self.carried
                    && !self.msg_overflow
                    && self.headers.len() < MAX_HEADERS;
                match split_header(&data[start..end]) {
                    Some(h) if everyday => self.headers.push(h.map(|o| (start + o) as u32)),
                    _ => self.line_done(data, start, end, f),
                }
                continue;
            }
            self.append(&data[start..end]);
            if self.discarding {
                self.discarding = false;
                self.stats.dropped_lines += 1;
            } else {
                // A line put together from two reads: the message goes on in `owned`.
                self.carry(data);
                let line = std::mem::take(&mut self.line);
                let end = line.len() - usize::from(line.ends_with(b"\r"));
                self.line_done(&line, 0, end, f);
                self.line = line;
                self.line.clear();
            }
        }
        // The data is gone after this call: a message it holds a part of moves to `owned`.
        if !self.headers.is_empty() {
            self.carry(data);
        }
    }

    /// Moves the message's headers that lie in `data` to `owned`.
    fn carry(&mut self, data: &[u8]) {
        if self.carried {
            return;
        }
        self.carried = true;
        for h in &mut self.headers {
            let [n, ne, v, ve] = h.map(|o| o as usize);
            *h = copy_header(&mut self.owned, &data[n..ne], &data[v..ve]);
        }
    }

    fn append(&mut self, part: &[u8]) {
        if self.discarding {
            return;
        }
        if self.line.len() + part.len() > MAX_LINE {
            self.line.clear();
            self.discarding = true;
        } else {
            self.line.extend_from_slice(part);
        }
    }

    /// `src[start..end]` is a whole line without its line end; `src` is the data of this
    /// `push` unless the message has been carried, then the reassembled line.
    fn line_done(&mut self, src: &[u8], start: usize, end: usize, f: &mut dyn FnMut(Item<'_>)) {
        let line = &src[start..end];
        if self.banner_pending {
            if !line.is_empty() {
                self.banner_pending = false;
                f(Item::Banner(line));
            }
            return;
        }
        if line.is_empty() {
            if self.msg_overflow {
                self.stats.dropped_messages += 1;
            } else if !self.headers.is_empty() {
                let buf = if self.carried { &self.owned[..] } else { src };
                f(Item::Message(Message {
                    buf,
                    headers: &self.headers,
                }));
            }
            self.headers.clear();
            self.owned.clear();
            self.carried = false;
            self.msg_overflow = false;
            return;
        }
        if self.msg_overflow {
            return;
        }
        if self.headers.len() == MAX_HEADERS {
            self.msg_overflow = true;
            return;
        }
        let Some([n, ne, v, ve]) = split_header(line) else {
            self.stats.dropped_lines += 1;
            return;
        };
        if self.carried {
            push_header(
                &mut self.owned,
                &mut self.headers,
                &line[n..ne],
                &line[v..ve],
            );
        } else {
            let at = |o: usize| (start + o) as u32;
            self.headers.push([at(n), at(ne), at(v), at(ve)]);
        }
    }
}

/// `Name: value` as the ranges of name and value in `line`, each trimmed of ASCII
/// whitespace; values may themselves contain `: `, so the split is at the first colon.
#[inline(always)]
fn split_header(line: &[u8]) -> Option<[usize; 4]> {
    let colon = find_byte(line, b':')?;
    // As Asterisk writes it, `Name: value` with one space and nothing to trim: three
    // compares instead of the trimming loops.
    if colon > 0 && colon + 2 < line.len() {
        let (first, last, name_end) = (line[0], line[line.len() - 1], line[colon - 1]);
        if first > b' '
            && name_end > b' '
            && line[colon + 1] == b' '
            && line[colon + 2] > b' '
            && last > b' '
        {
            return Some([0, colon, colon + 2, line.len()]);
        }
    }
    let (n, ne) = trimmed(line, 0, colon);
    let (v, ve) = trimmed(line, colon + 1, line.len());
    Some([n, ne, v, ve])
}

/// `line[a..b]` without ASCII whitespace at either end, as a range of `line`.
#[inline(always)]
fn trimmed(line: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    // Whitespace is at most b' ': one compare rules out almost every byte.
    let space = |c: u8| c <= b' ' && c.is_ascii_whitespace();
    while a < b && space(line[a]) {
        a += 1;
    }
    while b > a && space(line[b - 1]) {
        b -= 1;
    }
    (a, b)
}

impl Default for Framer {
    fn default() -> Framer {
        Framer::new()
    }
}

/// Index of the first `byte`, eight bytes at a time (lines are short and many; a byte loop
/// was the framer's main cost).
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(byte);
    let mut chunks = hay.chunks_exact(8);
    let mut off = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().unwrap()) ^ pattern;
        // Flags each zero byte of x; the lowest flag is always a true one.
        let zero = x.wrapping_sub(LO) & !x & HI;
        if zero != 0 {
            return Some(off + (zero.trailing_zeros() / 8) as usize);
        }
        off += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| off + i)
}

/// Keeps a value that goes into an action on one line: CR, LF and NUL would let it start
/// a new header.
fn one_line(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

/// `Action: Login`, subscribed to the security and system classes only.
pub fn login_action(user: &str, secret: &str, action_id: &str) -> Vec<u8> {
    format!(
        "Action: Login\r\nActionID: {}\r\nUsername: {}\r\nSecret: {}\r\nEvents: security,system\r\n\r\n",
        one_line(action_id),
        one_line(user),
        one_line(secret)
    )
    .into_bytes()
}

pub fn ping_action(action_id: &str) -> Vec<u8> {
    format!("Action: Ping\r\nActionID: {}\r\n\r\n", one_line(action_id)).into_bytes()
}

pub fn logoff_action() -> &'static [u8] {
    b"Action: Logoff\r\n\r\n"
}

#[cfg(test)]
mod tests;
