//! The TCP connection to Asterisk around a `Session`, and when to try again without one.

use std::io::{ErrorKind, Read as _, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::{Close, Session, Settings};
use crate::ami::{self, Message};
use crate::resolver::{self, LookupChild};
use crate::{debug, info, warn};

/// After a session that had worked ends (Asterisk restarting, crashed), the first attempt
/// comes this soon...
const FAST_FIRST: Duration = Duration::from_millis(100);
/// ...and the next ones this often, for this long: every second blind is a second of
/// unseen attacks, and a refused connect on loopback costs microseconds.
const FAST_RETRY: Duration = Duration::from_millis(250);
const FAST_WINDOW: Duration = Duration::from_secs(60);

/// Reconnect delays: fast for a while after a session that had worked, then from `min`
/// doubling per failure up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    fast_until: Option<Instant>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
            fast_until: None,
        }
    }

    pub fn set_limits(&mut self, min: Duration, max: Duration) {
        self.min = min;
        self.max = max;
        self.next = self.next.clamp(min, max);
    }

    /// The delay after a failed attempt at `now`.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if self.fast_until.is_some_and(|t| now < t) {
            return FAST_RETRY;
        }
        self.fast_until = None;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The delay after a session that had worked was lost at `now`.
    pub fn lost(&mut self, now: Instant) -> Duration {
        self.next = self.min;
        self.fast_until = Some(now + FAST_WINDOW);
        FAST_FIRST
    }

    pub fn logged_in(&mut self) {
        self.next = self.min;
        self.fast_until = None;
    }
}

/// A delay as a log line says it: `250 ms`, `2s`.
fn shown(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Counters of the connection, over all sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub logins: u64,
    pub login_failures: u64,
    pub connect_failures: u64,
    pub dropped_lines: u64,
    pub dropped_messages: u64,
    /// Times a logged-in session saw no security event (the AMI user cannot read them).
    pub blind_warnings: u64,
}

/// A connect under way, never waited for: its socket is polled for POLLOUT, and it gives
/// up at `deadline` (`connect_timeout`) for the next address.
struct Dialing {
    stream: TcpStream,
    addr: SocketAddr,
    rest: std::vec::IntoIter<SocketAddr>,
    deadline: Instant,
}

/// The connection to Asterisk: at most one session, and when to try again without one.
pub struct Link {
    conn: Option<(TcpStream, Session)>,
    /// The AMI host's name being looked up (a child: getaddrinfo blocks for as long as DNS
    /// takes, and a name server that never answers would hold the loop).
    resolving: Option<LookupChild>,
    dialing: Option<Dialing>,
    /// Where `conn` goes.
    peer: std::net::IpAddr,
    next_connect: Instant,
    backoff: Backoff,
    seq: u64,
    settings: Settings,
    counters: Counters,
    /// Unix time of this session's login.
    logged_in_at: Option<i64>,
    /// Why the last connection or attempt ended.
    last_failure: Option<String>,
}

/// What a read from the socket gave.
pub enum Read {
    Data(usize),
    /// Nothing more for now.
    Idle,
    /// The connection ended (and a reconnect is scheduled).
    Closed,
}

impl Link {
    pub fn new(settings: Settings) -> Link {
        Link {
            conn: None,
            resolving: None,
            dialing: None,
            peer: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            next_connect: Instant::now(),
            backoff: Backoff::new(settings.reconnect_min, settings.reconnect_max),
            seq: 0,
            settings,
            counters: Counters::default(),
            logged_in_at: None,
            last_failure: None,
        }
    }

    /// Where AMI is (`host:port`).
    pub fn target(&self) -> String {
        self.settings.target()
    }

    /// The session's banner and login time, while logged in.
    pub fn session(&self) -> Option<(&str, i64)> {
        let (_, s) = self.conn.as_ref()?;
        Some((s.banner(), self.logged_in_at?))
    }

    /// Why the last connection or attempt ended, and when the next attempt is due.
    pub fn last_failure(&self) -> (Option<&str>, Instant) {
        (self.last_failure.as_deref(), self.next_connect)
    }

    /// New settings take effect for the next session; `reconnect` ends the current one now.
    pub fn reconfigure(&mut self, settings: Settings, reconnect: bool) {
        self.backoff
            .set_limits(settings.reconnect_min, settings.reconnect_max);
        self.settings = settings;
        if reconnect {
            self.resolving = None;
            self.dialing = None;
            self.close(Close::Lost("AMI settings changed".into()));
            self.next_connect = Instant::now();
        }
    }

    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The address connected to, while connected (the AMI host as resolved at this connect).
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.conn.as_ref().map(|_| self.peer)
    }

    /// Whether chan_iax2 answered the current session (it reports nothing on AMI).
    pub fn iax2_loaded(&self) -> bool {
        self.conn.as_ref().is_some_and(|(_, s)| s.iax2_loaded())
    }

    /// Whether a session is logged in, so that Ampere sees Asterisk's security events.
    pub fn logged_in(&self) -> bool {
        self.conn.as_ref().is_some_and(|(_, s)| s.is_ready())
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        if let Some((_, s)) = &self.conn {
            let (lines, messages) = s.dropped();
            c.dropped_lines += lines;
            c.dropped_messages += messages;
            c.blind_warnings += s.blind_warnings();
        }
        c
    }

    /// The socket and the poll events wanted on it, while connected.
    pub fn poll_fd(&self) -> Option<(RawFd, i16)> {
        if let Some(r) = &self.resolving {
            return Some((r.fd(), crate::sys::POLLIN));
        }
        if let Some(d) = &self.dialing {
            return Some((d.stream.as_raw_fd(), crate::sys::POLLOUT));
        }
        let (stream, s) = self.conn.as_ref()?;
        let mut events = crate::sys::POLLIN;
        if !s.output().is_empty() {
            events |= crate::sys::POLLOUT;
        }
        Some((stream.as_raw_fd(), events))
    }

    pub fn next_timer(&self) -> Option<Instant> {
        if let Some(r) = &self.resolving {
            return Some(r.deadline);
        }
        if let Some(d) = &self.dialing {
            return Some(d.deadline);
        }
        match &self.conn {
            None => Some(self.next_connect),
            Some((_, s)) => s.next_timer(),
        }
    }

    /// Connects when it is time, sends a Ping or ends a dead session.
    pub fn tick(&mut self, now: Instant) {
        if self.resolving.take_if(|r| now >= r.deadline).is_some() {
            let why = format!("no answer within {}s", resolver::LIMIT.as_secs());
            return self.unresolved(&why);
        }
        if let Some(d) = self.dialing.take_if(|d| now >= d.deadline) {
            let why = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}s",
                    self.settings.connect_timeout.as_secs()
                ),
            );
            self.dial(d.rest, Some((d.addr, why)));
            return;
        }
        let Some((_, s)) = &mut self.conn else {
            if now >= self.next_connect && self.dialing.is_none() && self.resolving.is_none() {
                self.connect();
            }
            return;
        };
        if let Some(close) = s.tick(now) {
            self.close(close);
        } else {
            self.flush();
        }
    }

    /// Starts connecting to the AMI host: an address at once, a name once a child has
    /// looked it up (`resolve_ready`; a literal address never goes to the resolver).
    fn connect(&mut self) {
        let host = self.settings.host.as_str();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, self.settings.port);
            return self.dial(vec![addr].into_iter(), None);
        }
        let deadline = Instant::now() + resolver::LIMIT;
        match LookupChild::spawn([host], deadline) {
            Ok(child) => self.resolving = Some(child),
            Err(e) => self.unresolved(&format!("cannot start a lookup: {e}")),
        }
    }

    pub fn resolving(&self) -> bool {
        self.resolving.is_some()
    }

    /// The lookup's pipe is readable: connects to what the name resolved to.
    pub fn resolve_ready(&mut self) {
        let Some(r) = &mut self.resolving else {
            return;
        };
        let (lines, eof) = match r.read() {
            Ok(read) => read,
            Err(e) => {
                self.resolving = None;
                return self.unresolved(&e.to_string());
            }
        };
        let port = self.settings.port;
        match lines.first().map(|l| resolver::child::answer(l).1) {
            Some(Ok(addrs)) => {
                self.resolving = None;
                let addrs: Vec<SocketAddr> = addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                self.dial(addrs.into_iter(), None);
            }
            Some(Err(why)) => {
                self.resolving = None;
                self.unresolved(&why);
            }
            None if eof => {
                self.resolving = None;
                self.unresolved("the lookup ended early");
            }
            None => {}
        }
    }

    fn unresolved(&mut self, why: &str) {
        self.counters.connect_failures += 1;
        let target = self.settings.target();
        self.retry_later(&format!("cannot resolve AMI host {target}: {why}"));
    }

    /// Starts a connect to the next of `rest`; when none is left, the attempt failed.
    fn dial(
        &mut self,
        mut rest: std::vec::IntoIter<SocketAddr>,
        mut last_err: Option<(SocketAddr, std::io::Error)>,
    ) {
        while let Some(addr) = rest.next() {
            match crate::sys::connect_start(&addr) {
                Ok((stream, true)) => return self.established(stream, addr),
                Ok((stream, false)) => {
                    self.dialing = Some(Dialing {
                        stream,
                        addr,
                        rest,
                        deadline: Instant::now() + self.settings.connect_timeout,
                    });
                    return;
                }
                Err(e) => last_err = Some((addr, e)),
            }
        }
        self.counters.connect_failures += 1;
        let target = self.settings.target();
        // The address only where it says more than the target (a name, several addresses).
        let why = match last_err {
            Some((addr, e)) if addr.to_string() == target => e.to_string(),
            Some((addr, e)) => format!("{addr}: {e}"),
            None => "no address".to_string(),
        };
        self.retry_later(&format!("cannot connect to AMI at {target}: {why}"));
    }

    /// The socket of a connect under way is ready: connected, or on to the next address.
    pub fn connect_ready(&mut self) {
        let Some(d) = self.dialing.take() else {
            return;
        };
        let result = match d.stream.take_error() {
            Ok(None) => d.stream.peer_addr().map(|_| ()),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.established(d.stream, d.addr),
            Err(e) => self.dial(d.rest, Some((d.addr, e))),
        }
    }

    pub fn dialing(&self) -> bool {
        self.dialing.is_some()
    }

    fn established(&mut self, stream: TcpStream, addr: SocketAddr) {
        let _ = stream.set_nodelay(true);
        debug!("connected to {addr}");
        self.seq += 1;
        let session = Session::new(self.settings.clone(), self.seq, Instant::now());
        self.conn = Some((stream, session));
        self.peer = addr.ip();
    }

    fn retry_later(&mut self, why: &str) {
        self.last_failure = Some(why.to_string());
        let delay = self.backoff.failed(Instant::now());
        warn!("{why}; retrying in {}", shown(delay));
        self.next_connect = Instant::now() + delay;
    }

    fn close(&mut self, why: Close) {
        let Some((_, s)) = self.conn.take() else {
            return;
        };
        let (lines, messages) = s.dropped();
        self.counters.dropped_lines += lines;
        self.counters.dropped_messages += messages;
        self.counters.blind_warnings += s.blind_warnings();
        self.logged_in_at = None;
        match why {
            Close::Lost(msg) => {
                self.last_failure = Some(format!("connection lost: {msg}"));
                let delay = self.backoff.lost(Instant::now());
                warn!(
                    "AMI connection lost: {msg}; reconnecting in {}",
                    shown(delay)
                );
                self.next_connect = Instant::now() + delay;
            }
            Close::Failed(msg) => self.retry_later(&msg),
        }
    }

    /// The socket failed or closed: a session that was logged in counts as lost (reconnect
    /// soon), one that never got that far as a failed attempt (back off).
    fn ended(&mut self, msg: String) {
        let ready = self.conn.as_ref().is_some_and(|(_, s)| s.is_ready());
        self.close(if ready {
            Close::Lost(msg)
        } else {
            Close::Failed(msg)
        });
    }

    /// Writes what the session has queued, as far as the socket takes it.
    pub fn flush(&mut self) {
        let Some((stream, s)) = &mut self.conn else {
            return;
        };
        while !s.output().is_empty() {
            match stream.write(s.output()) {
                Ok(0) => break,
                Ok(n) => s.sent(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ended(format!("write: {e}"));
                    return;
                }
            }
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Read {
        let Some((stream, _)) = &mut self.conn else {
            return Read::Closed;
        };
        loop {
            return match stream.read(buf) {
                Ok(0) => {
                    self.ended("connection closed by Asterisk".to_string());
                    Read::Closed
                }
                Ok(n) => Read::Data(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Read::Idle,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.ended(format!("read: {e}"));
                    Read::Closed
                }
            };
        }
    }

    /// Hands bytes read to the session; events go to `on_event`. Returns whether the
    /// session is still open.
    pub fn received(&mut self, data: &[u8], on_event: &mut dyn FnMut(&Message)) -> bool {
        let Some((_, s)) = &mut self.conn else {
            return false;
        };
        let step = s.received(data, Instant::now(), on_event);
        if step.logged_in {
            self.counters.logins += 1;
            self.logged_in_at = Some(crate::clock::now_epoch());
            self.backoff.logged_in();
            info!(
                "logged in to AMI at {} as `{}`{}",
                self.settings.target(),
                self.settings.user,
                if self.counters.logins > 1 {
                    " (reconnected)"
                } else {
                    ""
                }
            );
        }
        if let Some(close) = step.closed {
            if matches!(close, Close::Failed(_)) && !step.logged_in {
                self.counters.login_failures += 1;
            }
            self.close(close);
            return false;
        }
        self.flush();
        true
    }

    /// Says goodbye to Asterisk if logged in (at stop).
    pub fn logoff(&mut self) {
        if let Some((stream, s)) = &mut self.conn {
            if s.is_ready() {
                let _ = stream.write_all(ami::logoff_action());
            }
        }
    }
}
