//! The AMI session: connect, banner, login, keep-alive Ping, and reconnect with capped
//! exponential backoff. `Session` is the protocol of one connection without any I/O (bytes
//! in, bytes out, what happened as a returned value), so it is tested without a socket;
//! `Link` owns the TCP stream and the reconnect schedule around it.

mod ask;
mod link;

use std::time::{Duration, Instant};

/// How long after login the first security event (Asterisk sends our own login's
/// SuccessfulAuth) may take before Ampere says it is blind...
const SECURITY_GRACE: Duration = Duration::from_secs(5);
/// ...and how often it says so again while it stays blind.
const BLIND_REWARN: Duration = Duration::from_secs(60);

pub use link::{Counters as LinkCounters, Link, Read};

use crate::ami::{self, Framer, Item, Message};
use crate::config::Config;
use crate::log::{self, printable};
use crate::score::EventKind;
use crate::{debug, error, info, warn};

/// What the session needs of the config; refreshed on SIGHUP.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    /// The config file, for the hint in a refused-login message.
    pub source: String,
    pub connect_timeout: Duration,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Settings {
    pub fn from(cfg: &Config) -> Settings {
        Settings {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
            pass: cfg.pass.clone(),
            source: cfg.source.clone(),
            connect_timeout: Duration::from_secs(cfg.connect_timeout),
            ping_interval: Duration::from_secs(cfg.ping_interval),
            ping_timeout: Duration::from_secs(cfg.ping_timeout),
            reconnect_min: Duration::from_secs(cfg.reconnect_min),
            reconnect_max: Duration::from_secs(cfg.reconnect_max),
        }
    }

    pub fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Close {
    /// The session was fine until now (EOF, Shutdown, a dead connection): reconnect after
    /// the shortest delay.
    Lost(String),
    /// Connecting or logging in failed: back off further.
    Failed(String),
}

/// What one piece of input did to the session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub logged_in: bool,
    pub closed: Option<Close>,
}

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
enum State {
    Banner,
    LoggingIn,
    Ready,
}

/// The protocol state of one AMI connection.
pub struct Session {
    framer: Framer,
    proto: Proto,
}

/// Everything of a session but its framer, so that the framer's callback can borrow it.
struct Proto {
    state: State,
    out: Vec<u8>,
    login_id: String,
    ping_id: String,
    seq: u64,
    last_rx: Instant,
    /// Until when the banner/login answer, or the answer to an outstanding Ping, may take.
    deadline: Option<Instant>,
    /// While no security event has arrived since login: when to say that Ampere is blind.
    blind_check: Option<Instant>,
    /// Times it said so.
    blind_warnings: u64,
    /// Asterisk's banner (`Asterisk Call Manager/11.0.0`), escaped and cut short.
    banner: String,
    /// The questions asked after the login (who is registered, which trunks).
    ask: ask::Ask,
    settings: Settings,
}

impl Session {
    /// A session on a fresh connection; `seq` makes its ActionIDs unique per process.
    pub fn new(settings: Settings, seq: u64, now: Instant) -> Session {
        Session {
            framer: Framer::new(),
            proto: Proto {
                state: State::Banner,
                out: Vec::new(),
                login_id: format!("ampere-login-{seq}"),
                ping_id: String::new(),
                seq,
                last_rx: now,
                deadline: Some(now + settings.ping_timeout),
                blind_check: None,
                blind_warnings: 0,
                banner: String::new(),
                ask: ask::Ask::new(seq),
                settings,
            },
        }
    }

    /// Whether chan_iax2 answered this session's `IAXpeers`.
    pub fn iax2_loaded(&self) -> bool {
        self.proto.ask.iax2_loaded()
    }

    pub fn is_ready(&self) -> bool {
        self.proto.is_ready()
    }

    /// Bytes waiting to be written to Asterisk.
    pub fn output(&self) -> &[u8] {
        &self.proto.out
    }

    pub fn sent(&mut self, n: usize) {
        self.proto.out.drain(..n);
    }

    /// Lines and messages the framer dropped (too long, too many headers) so far.
    pub fn dropped(&self) -> (u64, u64) {
        let s = self.framer.stats;
        (s.dropped_lines, s.dropped_messages)
    }

    /// How often this session said that no security event arrives.
    pub fn banner(&self) -> &str {
        &self.proto.banner
    }

    pub fn blind_warnings(&self) -> u64 {
        self.proto.blind_warnings
    }

    /// When `tick` has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        self.proto.next_timer()
    }

    /// Sends a Ping after `ping_interval` of silence; a missed deadline ends the session.
    pub fn tick(&mut self, now: Instant) -> Option<Close> {
        self.proto.tick(now)
    }

    /// Bytes from Asterisk. Each message of a logged-in session that is not about the
    /// session itself goes to `on_event`.
    pub fn received(
        &mut self,
        data: &[u8],
        now: Instant,
        on_event: &mut dyn FnMut(&Message),
    ) -> Step {
        let Session { framer, proto } = self;
        proto.last_rx = now;
        if proto.is_ready() {
            // Anything from Asterisk proves the connection alive, also in place of a Pong.
            proto.deadline = None;
        }
        let mut step = Step::default();
        framer.push(data, &mut |item| {
            if step.closed.is_none() {
                proto.on_item(item, &mut step, on_event);
            }
        });
        step
    }
}

impl Proto {
    fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    fn next_timer(&self) -> Option<Instant> {
        let session = match self.deadline {
            Some(d) => Some(d),
            None if self.is_ready() => Some(self.last_rx + self.settings.ping_interval),
            None => None,
        };
        [session, self.blind_check].into_iter().flatten().min()
    }

    fn tick(&mut self, now: Instant) -> Option<Close> {
        if self.blind_check.is_some_and(|t| now >= t) {
            self.blind_warnings += 1;
            self.blind_check = Some(now + BLIND_REWARN);
            let u = &self.settings.user;
            error!(
                "logged in to AMI as `{u}`, but no security event has arrived (not even this login's SuccessfulAuth): Ampere sees no attack. In /etc/asterisk/manager.conf, give [{u}] `read = security,system` and no `eventfilter` that drops security events, then `asterisk -rx \"manager reload\"`"
            );
        }
        if let Some(d) = self.deadline {
            if now < d {
                return None;
            }
            return Some(if self.is_ready() {
                Close::Lost(format!(
                    "no answer to Ping within {}s: connection dead",
                    self.settings.ping_timeout.as_secs()
                ))
            } else {
                Close::Failed("no banner or login answer in time".into())
            });
        }
        if self.is_ready() && now >= self.last_rx + self.settings.ping_interval {
            self.seq += 1;
            self.ping_id = format!("ampere-ping-{}", self.seq);
            self.out.extend_from_slice(&ami::ping_action(&self.ping_id));
            self.deadline = Some(now + self.settings.ping_timeout);
            debug!(
                "quiet for {}s: sent Ping",
                self.settings.ping_interval.as_secs()
            );
        }
        None
    }

    fn on_item(&mut self, item: Item<'_>, step: &mut Step, on_event: &mut dyn FnMut(&Message)) {
        let m = match item {
            Item::Banner(b) => {
                if !b.starts_with(b"Asterisk Call Manager/") {
                    warn!("unexpected AMI banner `{}`", printable(b));
                }
                debug!("banner: {}", printable(b));
                self.banner = printable(&b[..b.len().min(80)]);
                let s = &self.settings;
                self.out
                    .extend_from_slice(&ami::login_action(&s.user, &s.pass, &self.login_id));
                self.state = State::LoggingIn;
                return;
            }
            Item::Message(m) => m,
        };
        let m = &m;
        if log::enabled(log::Level::Debug) {
            let text: Vec<String> = m
                .headers()
                .map(|(n, v)| format!("{}: {}", printable(n), printable(v)))
                .collect();
            debug!("<< {}", text.join(" | "));
        }
        match self.state {
            State::Banner => {}
            State::LoggingIn => self.on_login_reply(m, step),
            State::Ready => {
                if self.blind_check.is_some()
                    && m.get("Event").and_then(EventKind::from_event).is_some()
                {
                    self.blind_check = None;
                }
                if let Some(close) = self.on_ready(m) {
                    step.closed = Some(close);
                } else if !m.is_response() {
                    on_event(m);
                }
            }
        }
    }

    fn on_login_reply(&mut self, m: &Message, step: &mut Step) {
        if !m.is_response() {
            return;
        }
        // Asterisk echoes our ActionID; an answer for somebody else's action is not ours.
        if m.get("ActionID")
            .is_some_and(|id| id != self.login_id.as_bytes())
        {
            return;
        }
        let s = &self.settings;
        if m.get("Response")
            .is_some_and(|r| r.eq_ignore_ascii_case(b"Success"))
        {
            self.state = State::Ready;
            self.deadline = None;
            self.blind_check = Some(self.last_rx + SECURITY_GRACE);
            step.logged_in = true;
            // Who is registered now: a phone that registered while Ampere was away is
            // known before its first keepalive.
            self.out.extend_from_slice(&self.ask.actions());
            return;
        }
        let why = printable(m.get("Message").unwrap_or(b"no reason given"));
        error!(
            "AMI login as `{}` refused by {}: {why}. Check the [{}] section of /etc/asterisk/manager.conf (secret, permit/deny, read = security,system) and user/pass in {}",
            s.user,
            s.target(),
            s.user,
            s.source
        );
        step.closed = Some(Close::Failed("login refused".into()));
    }

    /// Messages about the session itself; None for everything else.
    fn on_ready(&mut self, m: &Message) -> Option<Close> {
        self.ask.on_message(m, &mut self.out);
        if m.is_response() {
            if m.get("ActionID") == Some(self.ping_id.as_bytes()) {
                debug!("Pong");
            }
            return None;
        }
        match m.get("Event").unwrap_or(b"") {
            b"Shutdown" => {
                let restart = printable(m.get("Restart").unwrap_or(b"?"));
                info!("Asterisk is shutting down (Restart: {restart})");
                Some(Close::Lost("Asterisk shut down".into()))
            }
            b"FullyBooted" => {
                info!("Asterisk is fully booted");
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
