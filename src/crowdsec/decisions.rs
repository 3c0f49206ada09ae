//! LAPI's decision stream (`GET /v1/decisions/stream`), read as it arrives:
//! `{"deleted": [decision...] | null, "new": [decision...] | null}`, each decision a flat
//! object (`duration`, `id`, `origin`, `scenario`, `scope`, `type`, `value`). Every field is
//! checked here: what comes out is a network Ampere may hand to its ban path, or the reason
//! an entry was left out.

use crate::error::Invalid;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::json::{Error, Reader, Token};

/// The longest string in a decision (LAPI's values and scenario names are far shorter).
const MAX_STRING: usize = 512;

/// Go's `time.Duration` ends at 2^63 ns, about 292 years.
const MAX_SECONDS: f64 = 9_223_372_036.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    New,
    Deleted,
}

impl List {
    pub fn as_str(self) -> &'static str {
        match self {
            List::New => "new",
            List::Deleted => "deleted",
        }
    }
}

/// One usable decision: a ban of `net` for `seconds` (negative in `deleted`).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub list: List,
    pub net: IpNet,
    pub seconds: i64,
    pub origin: String,
    pub scenario: String,
}

/// What the reader makes of one entry of a list.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Decision(Decision),
    /// Left out, and why (the value as it came, for the log line).
    Skipped {
        list: List,
        value: String,
        why: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Duration,
    Origin,
    Scenario,
    Scope,
    Type,
    Value,
    Other,
}

impl Field {
    fn of(key: &str) -> Field {
        match key {
            "duration" => Field::Duration,
            "origin" => Field::Origin,
            "scenario" => Field::Scenario,
            "scope" => Field::Scope,
            "type" => Field::Type,
            "value" => Field::Value,
            _ => Field::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Duration => "duration",
            Field::Origin => "origin",
            Field::Scenario => "scenario",
            Field::Scope => "scope",
            Field::Type => "type",
            Field::Value => "value",
            Field::Other => "?",
        }
    }
}

/// The fields of the decision being read.
#[derive(Default)]
struct Partial {
    duration: Option<String>,
    origin: Option<String>,
    scenario: Option<String>,
    scope: Option<String>,
    kind: Option<String>,
    value: Option<String>,
    /// The first known field whose value was not a string.
    wrong: Option<Field>,
}

impl Partial {
    fn slot(&mut self, f: Field) -> Option<&mut Option<String>> {
        match f {
            Field::Duration => Some(&mut self.duration),
            Field::Origin => Some(&mut self.origin),
            Field::Scenario => Some(&mut self.scenario),
            Field::Scope => Some(&mut self.scope),
            Field::Type => Some(&mut self.kind),
            Field::Value => Some(&mut self.value),
            Field::Other => None,
        }
    }

    fn wrong_type(&mut self, f: Field) {
        if f != Field::Other && self.wrong.is_none() {
            self.wrong = Some(f);
        }
    }

    fn finish(mut self, list: List) -> Item {
        match self.check(list) {
            Ok(d) => Item::Decision(d),
            Err(why) => Item::Skipped {
                list,
                value: self.value.unwrap_or_default(),
                why: why.0,
            },
        }
    }

    /// The decision, its origin and scenario taken out; the value stays for the log line
    /// of an entry left out.
    fn check(&mut self, list: List) -> Result<Decision, Invalid> {
        if let Some(f) = self.wrong {
            return Err(format!("its `{}` is not a string", f.name()).into());
        }
        let kind = self.kind.as_deref().ok_or("it has no `type`")?;
        if kind != "ban" {
            return Err(format!("type `{kind}` (only `ban` is applied)").into());
        }
        let value = self.value.as_deref().ok_or("it has no `value`")?;
        let scope = self.scope.as_deref().ok_or("it has no `scope`")?;
        let net = if scope.eq_ignore_ascii_case("ip") {
            IpAddr::from_str(value)
                .map(IpNet::from)
                .map_err(|_| "scope Ip with a value that is not an address".to_string())?
        } else if scope.eq_ignore_ascii_case("range") {
            IpNet::from_str(value)
                .map_err(|_| "scope Range with a value that is not a network".to_string())?
        } else {
            return Err(format!("scope `{scope}` (only Ip and Range are applied)").into());
        };
        let duration = self.duration.as_deref().ok_or("it has no `duration`")?;
        let seconds = go_duration(duration)?;
        let seconds = if list == List::New {
            if seconds <= 0.0 {
                return Err(format!("a new decision whose duration `{duration}` is over").into());
            }
            seconds.ceil() as i64
        } else {
            seconds as i64
        };
        Ok(Decision {
            list,
            net: crate::addr::canonical_net(net.trunc()),
            seconds,
            origin: self.origin.take().unwrap_or_default(),
            scenario: self.scenario.take().unwrap_or_default(),
        })
    }
}

/// Where in the stream's shape the reader is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Start,
    /// In the top-level object; the list named by the last key, if any.
    Top(Option<List>),
    /// In a list's array.
    List(List),
    /// In a decision; the field named by the last key.
    Decision(List, Field),
    End,
}

pub struct StreamReader {
    json: Reader,
    at: At,
    /// Open containers inside a value being skipped.
    skip: usize,
    /// Back here when the skipped value ends.
    after_skip: At,
    partial: Partial,
}

impl Default for StreamReader {
    fn default() -> Self {
        StreamReader::new()
    }
}

impl StreamReader {
    pub fn new() -> StreamReader {
        StreamReader {
            json: Reader::new(MAX_STRING),
            at: At::Start,
            skip: 0,
            after_skip: At::Start,
            partial: Partial::default(),
        }
    }

    /// Reads the next piece of the body; each entry of a list, as soon as it is complete,
    /// goes to `out`. An error means the stream is not what LAPI sends: the caller drops
    /// the rest of it.
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn FnMut(Item)) -> Result<(), Error> {
        let StreamReader {
            json,
            at,
            skip,
            after_skip,
            partial,
        } = self;
        json.feed(bytes, &mut |t| step(t, at, skip, after_skip, partial, out))
    }

    /// The body ended: an error unless it was one complete object.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.json.finish(&mut |_| Ok(()))
    }
}

fn step(
    t: Token<'_>,
    at: &mut At,
    skip: &mut usize,
    after_skip: &mut At,
    partial: &mut Partial,
    out: &mut dyn FnMut(Item),
) -> Result<(), Invalid> {
    let opens = matches!(t, Token::BeginObject | Token::BeginArray);
    if *skip > 0 {
        match t {
            Token::BeginObject | Token::BeginArray => *skip += 1,
            Token::EndObject | Token::EndArray => *skip -= 1,
            _ => {}
        }
        if *skip == 0 {
            *at = *after_skip;
        }
        return Ok(());
    }
    let mut skip_value = |back: At| {
        if opens {
            *skip = 1;
            *after_skip = back;
        }
    };
    match (*at, t) {
        (At::Start, Token::BeginObject) => *at = At::Top(None),
        (At::Start, _) => return Err("the answer is not a JSON object".into()),
        (At::Top(_), Token::Key(k)) => {
            *at = At::Top(match k {
                "new" => Some(List::New),
                "deleted" => Some(List::Deleted),
                _ => None,
            })
        }
        (At::Top(_), Token::EndObject) => *at = At::End,
        (At::Top(Some(l)), Token::BeginArray) => *at = At::List(l),
        (At::Top(Some(_)), Token::Null) => *at = At::Top(None),
        (At::Top(Some(l)), _) => return Err(format!("`{}` is not a list", l.as_str()).into()),
        (At::Top(None), _) => skip_value(At::Top(None)),
        (At::List(l), Token::BeginObject) => {
            *partial = Partial::default();
            *at = At::Decision(l, Field::Other);
        }
        (At::List(_), Token::EndArray) => *at = At::Top(None),
        (At::List(l), _) => {
            skip_value(At::List(l));
            out(Item::Skipped {
                list: l,
                value: String::new(),
                why: "an entry that is not an object".into(),
            });
        }
        (At::Decision(l, _), Token::Key(k)) => *at = At::Decision(l, Field::of(k)),
        (At::Decision(l, _), Token::EndObject) => {
            *at = At::List(l);
            out(std::mem::take(partial).finish(l));
        }
        (At::Decision(_, f), Token::Str(s)) => {
            if let Some(slot) = partial.slot(f) {
                *slot = Some(s.to_string());
            }
        }
        // A null field is a missing one.
        (At::Decision(..), Token::Null) => {}
        (At::Decision(l, f), _) => {
            partial.wrong_type(f);
            skip_value(At::Decision(l, Field::Other));
        }
        (At::End, _) => return Err("more after the end of the answer".into()),
    }
    Ok(())
}

/// Go's `time.Duration` text (`3h59m57.6s`, `-1.5s`, `300ms`, `0`) in seconds.
pub fn go_duration(s: &str) -> Result<f64, Invalid> {
    let bad = || Invalid::from(format!("`{s}` is not a duration"));
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.bytes().filter(|&b| b == b'.').count() > 1 {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * scale;
        if !total.is_finite() || total > MAX_SECONDS {
            return Err(format!("`{s}` is longer than a Go duration can be").into());
        }
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests;
