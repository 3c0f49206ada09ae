//! A streaming JSON reader for what CrowdSec's Local API sends: bytes go in as they arrive,
//! in pieces of any size, and come out as tokens. Nothing but the current string is held,
//! so a decision stream of several megabytes costs a few hundred bytes; depth and string
//! length are bounded, and anything that is not JSON is an error naming its byte offset.
//! Also the one escaping function every JSON text Ampere writes goes through.
//!
//! Hand-written rather than a crate: the two shapes read here are flat, and a full parser
//! (serde_json) would add its tree or its derive machinery to a router's binary (DESIGN.md).

use crate::error::Invalid;
use std::fmt;

/// Containers nested deeper than this are an error (the API's shapes nest three deep).
pub const MAX_DEPTH: usize = 16;

/// What the reader passes on. Strings are unescaped and valid UTF-8; numbers are the
/// literal's text, checked against JSON's grammar, for the consumer to convert and bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Token<'a> {
    BeginObject,
    EndObject,
    BeginArray,
    EndArray,
    Key(&'a str),
    Str(&'a str),
    Number(&'a str),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Bytes read before the offending one.
    pub offset: u64,
    pub what: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A value (top level, after `:`, after `,` in an array).
    Value,
    /// A value or `]` (just after `[`).
    ValueOrEnd,
    /// A key or `}` (just after `{`).
    KeyOrEnd,
    /// A key (after `,` in an object).
    Key,
    Colon,
    /// `,` or the container's end.
    CommaOrEnd,
    /// Inside a string; `key` tells which token it becomes.
    Str {
        key: bool,
    },
    /// After a backslash in a string.
    Escape {
        key: bool,
    },
    /// `\u` and the hex digits so far.
    Unicode {
        key: bool,
        digits: u8,
        code: u32,
    },
    Number,
    /// `true`, `false`, `null`: the literal and how much of it was seen.
    Literal {
        word: &'static [u8],
        seen: u8,
    },
    /// The top-level value is complete: only white space may follow.
    Done,
}

pub struct Reader {
    expect: Expect,
    /// Open containers, true for an object.
    stack: Vec<bool>,
    /// The string or number being read.
    text: Vec<u8>,
    /// A high surrogate waiting for its low half.
    high: Option<u32>,
    max_string: usize,
    offset: u64,
}

impl Reader {
    /// A reader whose strings (and numbers) may be at most `max_string` bytes long.
    pub fn new(max_string: usize) -> Reader {
        Reader {
            expect: Expect::Value,
            stack: Vec::new(),
            text: Vec::new(),
            high: None,
            max_string,
            offset: 0,
        }
    }

    /// True once one complete top-level value was read.
    pub fn done(&self) -> bool {
        self.expect == Expect::Done
    }

    /// Reads `bytes`, the next piece of the text, passing each complete token to `sink`. An
    /// error of `sink` stops the reading and comes back as it is.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Error> {
        for &b in bytes {
            self.byte(b, sink).map_err(|what| Error {
                offset: self.offset,
                what: what.0,
            })?;
            self.offset += 1;
        }
        Ok(())
    }

    /// The text ended: an error unless one complete value was read. A number at the very
    /// end is complete only now.
    pub fn finish(
        &mut self,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Error> {
        let at = self.offset;
        let err = |what: &str| Error {
            offset: at,
            what: what.to_string(),
        };
        if self.expect == Expect::Number {
            self.end_number(sink).map_err(|w| err(&w.0))?;
        }
        if self.expect == Expect::Done {
            Ok(())
        } else {
            Err(err("the text ends inside a value"))
        }
    }

    fn byte(
        &mut self,
        b: u8,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        match self.expect {
            Expect::Str { key } => self.string_byte(b, key, sink),
            Expect::Escape { key } => self.escape(b, key),
            Expect::Unicode { key, digits, code } => {
                let d = char::from(b)
                    .to_digit(16)
                    .ok_or("a \\u escape needs four hex digits")?;
                let code = code << 4 | d;
                if digits < 3 {
                    self.expect = Expect::Unicode {
                        key,
                        digits: digits + 1,
                        code,
                    };
                } else {
                    self.code_point(code)?;
                    self.expect = Expect::Str { key };
                }
                Ok(())
            }
            Expect::Number => {
                if matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    self.push_text(b)
                } else {
                    self.end_number(sink)?;
                    self.byte(b, sink)
                }
            }
            Expect::Literal { word, seen } => {
                if word.get(usize::from(seen)) != Some(&b) {
                    return Err(format!(
                        "unexpected {} in `{}`",
                        shown(b),
                        String::from_utf8_lossy(word)
                    )
                    .into());
                }
                if usize::from(seen) + 1 < word.len() {
                    self.expect = Expect::Literal {
                        word,
                        seen: seen + 1,
                    };
                    return Ok(());
                }
                self.value_done();
                sink(match word {
                    b"true" => Token::Bool(true),
                    b"false" => Token::Bool(false),
                    _ => Token::Null,
                })
            }
            _ if matches!(b, b' ' | b'\t' | b'\n' | b'\r') => Ok(()),
            Expect::Done => Err(format!("{} after the end of the text", shown(b)).into()),
            Expect::Colon if b == b':' => {
                self.expect = Expect::Value;
                Ok(())
            }
            Expect::Colon => Err(format!("expected `:`, found {}", shown(b)).into()),
            Expect::KeyOrEnd | Expect::Key if b == b'"' => {
                self.text.clear();
                self.expect = Expect::Str { key: true };
                Ok(())
            }
            Expect::KeyOrEnd if b == b'}' => self.close(true, sink),
            Expect::Key | Expect::KeyOrEnd => {
                Err(format!("expected a key in quotes, found {}", shown(b)).into())
            }
            Expect::CommaOrEnd => match (b, self.stack.last()) {
                (b',', Some(true)) => {
                    self.expect = Expect::Key;
                    Ok(())
                }
                (b',', _) => {
                    self.expect = Expect::Value;
                    Ok(())
                }
                (b'}', Some(true)) => self.close(true, sink),
                (b']', Some(false)) => self.close(false, sink),
                _ => Err(format!("expected `,` or the end, found {}", shown(b)).into()),
            },
            Expect::ValueOrEnd if b == b']' => self.close(false, sink),
            Expect::Value | Expect::ValueOrEnd => self.value_start(b, sink),
        }
    }

    fn value_start(
        &mut self,
        b: u8,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH}").into());
                }
                let object = b == b'{';
                self.stack.push(object);
                self.expect = if object {
                    Expect::KeyOrEnd
                } else {
                    Expect::ValueOrEnd
                };
                sink(if object {
                    Token::BeginObject
                } else {
                    Token::BeginArray
                })
            }
            b'"' => {
                self.text.clear();
                self.expect = Expect::Str { key: false };
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                self.text.clear();
                self.expect = Expect::Number;
                self.push_text(b)
            }
            b't' | b'f' | b'n' => {
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                self.expect = Expect::Literal { word, seen: 1 };
                Ok(())
            }
            _ => Err(format!("expected a value, found {}", shown(b)).into()),
        }
    }

    fn close(
        &mut self,
        object: bool,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        self.stack.pop();
        self.value_done();
        sink(if object {
            Token::EndObject
        } else {
            Token::EndArray
        })
    }

    /// A value ended: what may follow depends on the container it was in.
    fn value_done(&mut self) {
        self.expect = after_value(&self.stack);
    }

    fn push_text(&mut self, b: u8) -> Result<(), Invalid> {
        if self.text.len() >= self.max_string {
            return Err(format!("a string longer than {} bytes", self.max_string).into());
        }
        self.text.push(b);
        Ok(())
    }

    fn string_byte(
        &mut self,
        b: u8,
        key: bool,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if self.high.is_some() && b != b'\\' {
            self.lone_surrogate()?;
        }
        match b {
            b'"' => {
                let text = std::str::from_utf8(&self.text)
                    .map_err(|_| "a string that is not UTF-8".to_string())?;
                if key {
                    self.expect = Expect::Colon;
                    sink(Token::Key(text))
                } else {
                    self.expect = after_value(&self.stack);
                    sink(Token::Str(text))
                }
            }
            b'\\' => {
                self.expect = Expect::Escape { key };
                Ok(())
            }
            0..=0x1f => Err(format!("{} inside a string", shown(b)).into()),
            _ => self.push_text(b),
        }
    }

    fn escape(&mut self, b: u8, key: bool) -> Result<(), Invalid> {
        if b == b'u' {
            self.expect = Expect::Unicode {
                key,
                digits: 0,
                code: 0,
            };
            return Ok(());
        }
        if self.high.is_some() {
            self.lone_surrogate()?;
        }
        let c = match b {
            b'"' | b'\\' | b'/' => b,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => return Err(format!("unknown escape \\{}", shown(b)).into()),
        };
        self.expect = Expect::Str { key };
        self.push_text(c)
    }

    /// A `\uXXXX` escape: a character, or half of a surrogate pair. A half without its
    /// other half becomes U+FFFD, as most readers do.
    fn code_point(&mut self, code: u32) -> Result<(), Invalid> {
        let c = match (self.high.take(), code) {
            (None, 0xd800..=0xdbff) => {
                self.high = Some(code);
                return Ok(());
            }
            (Some(h), 0xdc00..=0xdfff) => 0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00),
            (Some(_), _) => {
                self.push_char(char::REPLACEMENT_CHARACTER)?;
                return self.code_point(code);
            }
            (None, _) => code,
        };
        self.push_char(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn lone_surrogate(&mut self) -> Result<(), Invalid> {
        self.high = None;
        self.push_char(char::REPLACEMENT_CHARACTER)
    }

    fn push_char(&mut self, c: char) -> Result<(), Invalid> {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .try_for_each(|b| self.push_text(b))
    }

    fn end_number(
        &mut self,
        sink: &mut dyn FnMut(Token<'_>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        let text = std::str::from_utf8(&self.text).unwrap_or("");
        if !is_number(text) {
            return Err(format!("`{}` is not a number", text).into());
        }
        self.expect = after_value(&self.stack);
        sink(Token::Number(text))
    }
}

fn after_value(stack: &[bool]) -> Expect {
    if stack.is_empty() {
        Expect::Done
    } else {
        Expect::CommaOrEnd
    }
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let int = digits(s);
    if int == 0 || (int > 1 && s.starts_with('0')) {
        return false;
    }
    let mut rest = &s[int..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = digits(r);
        if n == 0 {
            return false;
        }
        rest = &r[n..];
    }
    if let Some(r) = rest.strip_prefix(['e', 'E']) {
        let r = r.strip_prefix(['+', '-']).unwrap_or(r);
        let n = digits(r);
        if n == 0 {
            return false;
        }
        rest = &r[n..];
    }
    rest.is_empty()
}

/// A byte as an error message shows it.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// `s` as a JSON string, quotes included: what an attacker put in an account name cannot
/// end the string or break the document.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the two line separators JavaScript chokes on.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
