//! One HTTP/1.0 request and its answer over a non-blocking TCP socket in the poll loop: the
//! connect, the write and every read wait in `poll`, never in a system call. The answer's
//! head is bounded, its body is handed on piece by piece as it arrives (never held whole)
//! and bounded too, and the whole exchange has a deadline. HTTP/1.0 without keep-alive, so
//! the server ends the body by closing and never uses chunked encoding; no TLS (LAPI is on
//! loopback or a private network; DESIGN.md says how to reach another).

use crate::error::{Error, Result};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::sys::{self, PollFd};

/// The status line and headers of an answer, at most.
const MAX_HEAD: usize = 16 * 1024;

/// Bytes read per call of `ready`, so that the loop turns between pieces of a long body.
const READ_PER_TURN: usize = 64 * 1024;

/// A request: method, path and query, extra header lines, body.
pub struct Request<'a> {
    pub method: &'static str,
    pub target: &'a str,
    pub headers: &'a [(&'static str, &'a str)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The request's bytes. Header values come from the config (keys, tokens): a CR or LF in
    /// one would split the request, and is refused where the config is read.
    fn bytes(&self, host: &SocketAddr) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ampere/{}\r\n",
            self.method,
            self.target,
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            out.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                self.body.len()
            ));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(self.body);
        bytes
    }
}

/// Where an answer's body goes, piece by piece, with its status; an error ends the exchange.
pub type BodySink<'a> = dyn FnMut(u16, &[u8]) -> Result<()> + 'a;

#[derive(Debug)]
enum State {
    Connecting,
    Writing { written: usize },
    Head,
    Body { status: u16, left: Option<u64> },
}

/// How an exchange went on after a `ready` or a timer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Pending,
    /// The whole body was read (and given to the sink); the status.
    Done(u16),
    Failed(String),
}

pub struct Exchange {
    stream: TcpStream,
    state: State,
    out: Vec<u8>,
    head: Vec<u8>,
    body_read: u64,
    max_body: u64,
    deadline: Instant,
}

impl Exchange {
    /// Starts `req` to `peer`: the connect is under way when this returns. The answer's
    /// body may be at most `max_body` bytes; everything must be over within `limit`.
    pub fn start(
        peer: SocketAddr,
        req: &Request<'_>,
        max_body: u64,
        limit: Duration,
    ) -> io::Result<Exchange> {
        let (stream, done) = sys::connect_start(&peer)?;
        Ok(Exchange {
            stream,
            state: if done {
                State::Writing { written: 0 }
            } else {
                State::Connecting
            },
            out: req.bytes(&peer),
            head: Vec::new(),
            body_read: 0,
            max_body,
            deadline: Instant::now() + limit,
        })
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn poll_fd(&self) -> PollFd {
        PollFd {
            fd: self.stream.as_raw_fd(),
            events: match self.state {
                State::Connecting | State::Writing { .. } => sys::POLLOUT,
                _ => sys::POLLIN,
            },
            revents: 0,
        }
    }

    /// The deadline passed: whatever stage it was in, the exchange failed.
    pub fn timed_out(&self) -> Step {
        let stage = match self.state {
            State::Connecting => "connecting",
            State::Writing { .. } => "sending the request",
            State::Head => "waiting for the answer",
            State::Body { .. } => "reading the answer",
        };
        Step::Failed(format!("no complete answer in time ({stage})"))
    }

    /// The socket is ready: goes as far as it can without waiting. Body bytes go to `sink`
    /// with the status as they arrive; an error of the sink ends the exchange.
    pub fn ready(&mut self, sink: &mut BodySink<'_>) -> Step {
        match self.advance(sink) {
            Ok(step) => step,
            Err(e) => Step::Failed(e.to_string()),
        }
    }

    fn advance(&mut self, sink: &mut BodySink<'_>) -> Result<Step> {
        if let State::Connecting = self.state {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    return Err(Error::Protocol(format!("cannot connect: {e}")))
                }
            }
            if let Err(e) = self.stream.peer_addr() {
                return Err(Error::Protocol(format!("cannot connect: {e}")));
            }
            self.state = State::Writing { written: 0 };
        }
        if let State::Writing { written } = &mut self.state {
            loop {
                match self.stream.write(&self.out[*written..]) {
                    Ok(0) => {
                        return Err(Error::Protocol(
                            "the connection closed while sending".into(),
                        ))
                    }
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Pending),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Protocol(format!("cannot send the request: {e}"))),
                }
                if *written == self.out.len() {
                    break;
                }
            }
            self.out = Vec::new();
            self.state = State::Head;
        }
        let mut buf = [0u8; 8192];
        let mut taken = 0;
        while taken < READ_PER_TURN {
            let n = match self.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Protocol(format!("cannot read the answer: {e}"))),
            };
            taken += n;
            if n == 0 {
                return match self.state {
                    State::Body { status, left: None } => Ok(Step::Done(status)),
                    State::Body { left: Some(l), .. } => Err(Error::Protocol(format!(
                        "the answer ended {l} bytes short of its Content-Length"
                    ))),
                    _ => Err(Error::Protocol(
                        "the connection closed before a complete answer head".into(),
                    )),
                };
            }
            if let Some(step) = self.received(&buf[..n], sink)? {
                return Ok(step);
            }
        }
        Ok(Step::Pending)
    }

    /// Bytes arrived: into the head until it is complete, the rest to the sink.
    fn received(&mut self, mut bytes: &[u8], sink: &mut BodySink<'_>) -> Result<Option<Step>> {
        if let State::Head = self.state {
            let before = self.head.len();
            self.head.extend_from_slice(bytes);
            let Some(end) = head_end(&self.head) else {
                if self.head.len() > MAX_HEAD {
                    return Err(Error::Protocol(format!(
                        "an answer head longer than {MAX_HEAD} bytes"
                    )));
                }
                return Ok(None);
            };
            let (status, length) = parse_head(&self.head[..end])?;
            if let Some(l) = length.filter(|&l| l > self.max_body) {
                return Err(Error::Protocol(format!(
                    "an answer of {l} bytes (at most {} are read)",
                    self.max_body
                )));
            }
            self.state = State::Body {
                status,
                left: length,
            };
            bytes = &bytes[end - before..];
            self.head = Vec::new();
        }
        let State::Body { status, left } = &mut self.state else {
            return Ok(None);
        };
        let status = *status;
        if let Some(l) = left {
            let take = bytes.len().min(usize::try_from(*l).unwrap_or(usize::MAX));
            bytes = &bytes[..take];
            *l -= take as u64;
        }
        self.body_read += bytes.len() as u64;
        if self.body_read > self.max_body {
            return Err(Error::Protocol(format!(
                "an answer longer than {} bytes (no more is read)",
                self.max_body
            )));
        }
        if !bytes.is_empty() {
            sink(status, bytes)?;
        }
        Ok((*left == Some(0)).then_some(Step::Done(status)))
    }
}

/// Where the head ends (after its blank line), if it is complete.
fn head_end(head: &[u8]) -> Option<usize> {
    let crlf = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The status and the Content-Length, if any. Chunked encoding is refused: an HTTP/1.0
/// request never gets it from a server that keeps to the protocol.
fn parse_head(head: &[u8]) -> Result<(u16, Option<u64>)> {
    let bad = Error::Protocol;
    let text =
        std::str::from_utf8(head).map_err(|_| bad("an answer head that is not text".into()))?;
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(bad(format!(
            "not an HTTP answer: `{}`",
            crate::log::printable(status_line.as_bytes())
        )));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| bad(format!("a status that is not a number: `{code}`")))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length =
                Some(value.parse::<u64>().map_err(|_| {
                    bad(format!("a Content-Length that is not a number: `{value}`"))
                })?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(bad(format!(
                "an answer in `{value}` encoding to an HTTP/1.0 request"
            )));
        }
    }
    Ok((status, length))
}

#[cfg(test)]
mod tests;
