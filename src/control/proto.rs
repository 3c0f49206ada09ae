//! The control protocol, both ends: what a client asks and what the daemon answers, as types,
//! with the one encoder and the one decoder of each. The daemon decodes requests and encodes
//! answers (`Control`); the CLI encodes requests and decodes answers (`client`). The text on
//! the wire stays a line per request and a line per network, readable with `socat`.
//!
//! Everything the daemon decodes comes from a client it does not trust: a list is parsed
//! into networks here, and a line that is none becomes that line's error, never a ban.

use crate::error::Invalid;
use std::fmt::Write;

use ipnet::IpNet;

use crate::addr::{self, net_text};

/// What a client asks.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Status {
        keys: bool,
    },
    /// `why` and the text the admin gave (the report says when it is no address).
    Why(String),
    /// `ampere -a` and `-d` handed to the daemon: the networks, one per line.
    Add(List),
    Del(List),
}

/// A list of networks as the daemon read it: the ones that parse, and an error item for
/// each line that does not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct List {
    pub nets: Vec<IpNet>,
    pub bad: Vec<Item>,
}

/// What the daemon answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `status` and `why`: a report for the terminal.
    Text(String),
    /// `add`/`del`: one item per network (and per line that is none), and the error that
    /// stopped the rest, if one did.
    Items {
        items: Vec<Item>,
        error: Option<String>,
    },
    /// The request was refused or failed as a whole.
    Error(String),
}

/// One network of a list and what became of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    /// The network as the daemon printed it (or the line that is none, escaped).
    pub net: String,
    /// Why not: the daemon's words as they go over the wire, for the admin to read (the
    /// daemon's typed error became this text there; the CLI only prints it).
    pub result: Result<Done, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Banned,
    Already,
    /// An existing temporary ban made permanent.
    Permanent,
    /// Lifted, with how many bans inside it (itself included).
    Unbanned(usize),
}

impl Done {
    fn word(self) -> String {
        match self {
            Done::Banned => "banned".into(),
            Done::Already => "already".into(),
            Done::Permanent => "permanent".into(),
            Done::Unbanned(n) => format!("unbanned {n}"),
        }
    }

    fn parse(words: &str) -> Option<Done> {
        Some(match words {
            "banned" => Done::Banned,
            "already" => Done::Already,
            "permanent" => Done::Permanent,
            w => Done::Unbanned(w.strip_prefix("unbanned ")?.parse().ok()?),
        })
    }
}

impl Item {
    pub fn ok(net: &IpNet, done: Done) -> Item {
        Item {
            net: net_text(net),
            result: Ok(done),
        }
    }

    pub fn err(net: &IpNet, why: impl std::fmt::Display) -> Item {
        Item {
            net: net_text(net),
            result: Err(why.to_string()),
        }
    }
}

impl Request {
    /// The request line and, for a list, its body (sent up to the client's EOF).
    pub fn encode(&self) -> (String, Option<String>) {
        let list = |l: &List| {
            l.nets
                .iter()
                .map(|n| format!("{}\n", net_text(n)))
                .collect()
        };
        match self {
            Request::Status { keys: false } => ("status".into(), None),
            Request::Status { keys: true } => ("status keys".into(), None),
            Request::Why(a) => (format!("why {a}"), None),
            Request::Add(l) => ("add".into(), Some(list(l))),
            Request::Del(l) => ("del".into(), Some(list(l))),
        }
    }

    /// A request line and its body (empty but for a list); Err is the refusal's text.
    pub fn decode(line: &str, body: &str) -> Result<Request, Invalid> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("status"), None, _) => Ok(Request::Status { keys: false }),
            (Some("status"), Some("keys"), None) => Ok(Request::Status { keys: true }),
            (Some("why"), Some(a), None) => Ok(Request::Why(a.to_string())),
            (Some("add"), None, _) => Ok(Request::Add(List::decode(body))),
            (Some("del"), None, _) => Ok(Request::Del(List::decode(body))),
            _ => Err(
                "requests are `status`, `status keys`, `why ADDR`, and `add` or `del` with a list"
                    .into(),
            ),
        }
    }

    /// Whether the request line announces a body (read up to the client's EOF).
    pub fn has_body(line: &[u8]) -> bool {
        matches!(line.strip_suffix(b"\r").unwrap_or(line), b"add" | b"del")
    }
}

impl List {
    pub fn of(nets: &[IpNet]) -> List {
        List {
            nets: nets.to_vec(),
            bad: Vec::new(),
        }
    }

    /// One network per line; blank lines are skipped, a line that is none is its error.
    fn decode(body: &str) -> List {
        let mut list = List::default();
        for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match addr::parse_net(line) {
                Ok(n) => list.nets.push(n),
                Err(e) => list.bad.push(Item {
                    net: crate::log::printable(line.as_bytes()),
                    result: Err(e.0),
                }),
            }
        }
        list
    }
}

impl Answer {
    pub fn encode(&self) -> String {
        match self {
            Answer::Text(t) => t.clone(),
            Answer::Error(e) => format!("error: {e}\n"),
            Answer::Items { items, error } => {
                let mut out = String::new();
                for i in items {
                    let _ = match &i.result {
                        Ok(d) => writeln!(out, "ok {} {}", i.net, d.word()),
                        Err(e) => writeln!(out, "err {} {e}", i.net),
                    };
                }
                if let Some(e) = error {
                    let _ = writeln!(out, "error: {e}");
                }
                out
            }
        }
    }

    /// The daemon's answer to `request`. An answer that is not what the request gets (a
    /// line a list's answer has no words for) is an error, not a guess.
    pub fn decode(request: &Request, text: &str) -> Answer {
        if let Some(e) = text.strip_prefix("error: ") {
            return Answer::Error(e.trim_end().to_string());
        }
        if !matches!(request, Request::Add(_) | Request::Del(_)) {
            return Answer::Text(text.to_string());
        }
        let (mut items, mut error) = (Vec::new(), None);
        for line in text.lines() {
            let item = if let Some(e) = line.strip_prefix("error: ") {
                error = Some(e.to_string());
                continue;
            } else if let Some(rest) = line.strip_prefix("ok ") {
                rest.split_once(' ')
                    .and_then(|(net, w)| Some((net, Ok(Done::parse(w)?))))
            } else if let Some(rest) = line.strip_prefix("err ") {
                rest.split_once(' ')
                    .map(|(net, why)| (net, Err(why.to_string())))
            } else {
                None
            };
            match item {
                Some((net, result)) => items.push(Item {
                    net: net.to_string(),
                    result,
                }),
                None => {
                    return Answer::Error(format!(
                        "the daemon's answer has a line this version cannot read: `{}`",
                        crate::log::printable(line.as_bytes())
                    ))
                }
            }
        }
        Answer::Items { items, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        addr::parse_net(s).unwrap()
    }

    #[test]
    fn every_request_reads_back_as_itself() {
        let list = List::of(&[net("192.0.2.1"), net("2001:db8::/64")]);
        for r in [
            Request::Status { keys: false },
            Request::Status { keys: true },
            Request::Why("192.0.2.1".into()),
            Request::Add(List::of(&list.nets)),
            Request::Del(list),
        ] {
            let (line, body) = r.encode();
            assert_eq!(Request::has_body(line.as_bytes()), body.is_some(), "{line}");
            let back = Request::decode(&line, body.as_deref().unwrap_or(""));
            assert_eq!(back, Ok(r));
        }
    }

    #[test]
    fn a_hostile_list_is_parsed_and_its_bad_lines_are_items() {
        let Ok(Request::Add(l)) = Request::decode("add", "192.0.2.1\n\n; rm -rf /\n10.1.2.3/8\n")
        else {
            panic!("not an add")
        };
        assert_eq!(l.nets, [net("192.0.2.1"), net("10.0.0.0/8")]);
        assert_eq!(l.bad.len(), 1);
        assert_eq!(l.bad[0].net, "; rm -rf /");
        assert!(Request::decode("shutdown", "").is_err());
        assert!(Request::decode("why", "").is_err());
    }

    #[test]
    fn every_answer_reads_back_as_itself() {
        let add = Request::Add(List::default());
        let items = Answer::Items {
            items: vec![
                Item::ok(&net("192.0.2.1"), Done::Banned),
                Item::ok(&net("192.0.2.2"), Done::Already),
                Item::ok(&net("192.0.2.3"), Done::Permanent),
                Item::ok(&net("10.0.0.0/8"), Done::Unbanned(3)),
                Item::err(&net("127.0.0.1"), "is loopback: never banned"),
            ],
            error: Some("database is locked".into()),
        };
        assert_eq!(Answer::decode(&add, &items.encode()), items);
        let text = Answer::Text("192.0.2.1:\n  bans: none\n".into());
        assert_eq!(
            Answer::decode(&Request::Why("x".into()), &text.encode()),
            text
        );
        let e = Answer::Error("not an address".into());
        assert_eq!(Answer::decode(&add, &e.encode()), e);
        assert!(matches!(
            Answer::decode(&add, "ok 192.0.2.1 exploded\n"),
            Answer::Error(_)
        ));
    }
}
