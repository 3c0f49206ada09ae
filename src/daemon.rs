//! Ampere's main job: one blocking, single-threaded poll(2) loop over the AMI socket and a
//! signal self-pipe. It restores stored bans at start, keeps an AMI session alive (login,
//! keep-alive Ping, reconnect with capped exponential backoff) and turns ban decisions into
//! a database record first and a firewall rule second, so that a crash never loses a ban.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::ami::{self, Framer, Item, Message};
use crate::config::{self, Config};
use crate::engine::{Engine, Verdict};
use crate::event::{Matcher, Parsed, SecurityEvent};
use crate::firewall::{self, Backend, Entry};
use crate::hook::Hooks;
use crate::log::{self, printable};
use crate::score::EventKind;
use crate::stats::{self, Stats};
use crate::store::{Banned, NewBan, Store};
use crate::sys::{self, PollFd, SignalPipe};
use crate::{debug, error, info, warn};

/// Bytes read per poll turn at most, so that signals are looked at between bursts.
const READ_PER_TURN: usize = 1 << 18;

/// How often the next expiry is reread from the database, to notice `ampere -a`/`-d`.
const EXPIRY_REFRESH: Duration = Duration::from_secs(60);

/// The WAL is checkpointed once the database was not written for this long...
const CHECKPOINT_QUIET: Duration = Duration::from_secs(1);
/// ...or, under a flood that never pauses, this long after the first unsynced write.
const CHECKPOINT_MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Tallies {
    logins: u64,
    unbans: u64,
    login_failures: u64,
    connect_failures: u64,
    bans: u64,
    already_banned: u64,
    firewall_errors: u64,
    store_errors: u64,
}

#[derive(PartialEq, Eq, Debug)]
enum State {
    Banner,
    LoggingIn,
    Ready,
}

/// One AMI session.
struct Session {
    state: State,
    out: Vec<u8>,
    login_id: String,
    ping_id: String,
    last_rx: Instant,
    /// Until when the banner/login answer, or the answer to an outstanding Ping, may take.
    deadline: Option<Instant>,
}

struct Conn {
    stream: TcpStream,
    framer: Framer,
    session: Session,
}

/// Why a session ends.
enum Close {
    /// The session was fine until now (EOF, Shutdown): reconnect after the shortest delay.
    Lost(String),
    /// Connecting or logging in failed: back off further.
    Failed(String),
}

/// Everything but the connection, so that the framer callback can borrow both.
struct Core {
    cfg: Config,
    cfg_path: PathBuf,
    cfg_explicit: bool,
    log_override: bool,
    engine: Engine,
    matcher: Matcher,
    store: Store,
    fw: Box<dyn Backend>,
    started: Instant,
    stats: Tallies,
    hooks: Hooks,
    /// Unix time at which the next ban ends, as last read from the database.
    next_expiry: Option<i64>,
    expiry_read: Instant,
    next_stats: Option<Instant>,
    last_event: Option<i64>,
    warned_bad_address: u32,
    seq: u64,
    /// Set by a successful login; the loop then resets its reconnect delay.
    backoff_reset: bool,
    /// Bans decided during the current read, applied together by `flush_bans`.
    pending: Vec<PendingBan>,
    /// First and last database write since the last WAL checkpoint. With `synchronous =
    /// NORMAL` a commit survives a crash of Ampere at once, and a power cut once the WAL is
    /// checkpointed (synced): within CHECKPOINT_QUIET of the last ban, at most
    /// CHECKPOINT_MAX_DELAY after the first.
    unsynced: Option<(Instant, Instant)>,
}

/// A ban decision waiting for the end of the read that produced it.
struct PendingBan {
    addr: IpAddr,
    kind: EventKind,
    service: String,
    account: String,
    penalty: u32,
}

pub fn run(cfg: Config, cfg_path: Option<PathBuf>, logfile: Option<PathBuf>) -> Result<(), String> {
    info!(
        "{} starting: config {}, chain {}, database {}",
        crate::cli::version(),
        cfg.source,
        cfg.chain,
        cfg.db.display()
    );
    debug!("effective config:\n{}", cfg.describe());
    // First of all, so that a SIGHUP from logrotate or a SIGUSR1 during a long restore waits
    // in the pipe instead of killing the process.
    let signals = SignalPipe::install(&[sys::SIGTERM, sys::SIGINT, sys::SIGHUP, sys::SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let fw = firewall::backend(&cfg);
    fw.prepare().map_err(|e| e.to_string())?;
    if let Some(dir) = cfg.db.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let mut store = Store::open(&cfg.db).map_err(|e| e.to_string())?;
    store.defer_checkpoints().map_err(|e| e.to_string())?;
    restore(&mut store, fw.as_ref())?;
    let mut d = Daemon {
        core: Core {
            engine: Engine::new(&cfg),
            matcher: Matcher::new(),
            store,
            fw,
            cfg_explicit: cfg_path.is_some(),
            cfg_path: cfg_path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH)),
            log_override: logfile.is_some(),
            started: Instant::now(),
            stats: Tallies::default(),
            hooks: Hooks::new(&cfg),
            next_expiry: None,
            expiry_read: Instant::now(),
            next_stats: cfg.statsfile.as_ref().map(|_| Instant::now()),
            last_event: None,
            warned_bad_address: 0,
            seq: 0,
            backoff_reset: false,
            pending: Vec::new(),
            unsynced: None,
            cfg,
        },
        conn: None,
        next_connect: Instant::now(),
        backoff: Duration::ZERO,
        signals,
    };
    d.backoff = d.core.min_backoff();
    d.core.read_next_expiry();
    d.run();
    d.core.write_stats(d.conn.is_some());
    info!("stopped; {}", d.core.stats(d.conn.is_some()).line());
    Ok(())
}

/// Lifts bans that ended while Ampere was down, then flushes the chain (or sets) and puts
/// every stored ban back, with its remaining time, in one batch.
fn restore(store: &mut Store, fw: &dyn Backend) -> Result<(), String> {
    let now = sys::now_epoch();
    let lapsed = store.expire_due(now).map_err(|e| e.to_string())?;
    if !lapsed.is_empty() {
        info!("{} ban(s) ended while Ampere was not running", lapsed.len());
    }
    let bans = store.active().map_err(|e| e.to_string())?;
    let mut entries = Vec::with_capacity(bans.len());
    for b in &bans {
        match config::parse_net(&b.addr) {
            Ok(net) => entries.push(Entry {
                net,
                timeout: remaining(b.expires, now),
            }),
            Err(e) => warn!("database entry skipped: {e}"),
        }
    }
    fw.restore(&entries).map_err(|e| e.to_string())?;
    info!("chain flushed, {} stored ban(s) restored", entries.len());
    Ok(())
}

/// Seconds a ban ending at `expires` has left at `now` (at least one; None = permanent).
fn remaining(expires: Option<i64>, now: i64) -> Option<u64> {
    expires.map(|e| (e - now).max(1) as u64)
}

struct Daemon {
    core: Core,
    conn: Option<Conn>,
    next_connect: Instant,
    backoff: Duration,
    signals: SignalPipe,
}

impl Daemon {
    fn run(&mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            self.timers();
            let timeout = self.poll_timeout();
            let mut fds = vec![PollFd {
                fd: self.signals.fd(),
                events: sys::POLLIN,
                revents: 0,
            }];
            if let Some(c) = &self.conn {
                let mut events = sys::POLLIN;
                if !c.session.out.is_empty() {
                    events |= sys::POLLOUT;
                }
                fds.push(PollFd {
                    fd: c.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
            if let Err(e) = sys::poll(&mut fds, timeout) {
                error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if fds.len() > 1 && fds[1].revents != 0 {
                self.on_socket(fds[1].revents, &mut buf);
            }
            if fds[0].revents != 0 && self.on_signals() {
                if let Some(c) = &mut self.conn {
                    if c.session.state == State::Ready {
                        let _ = c.stream.write_all(ami::logoff_action());
                    }
                }
                return;
            }
        }
    }

    /// Milliseconds until the next timer, rounded up so that it is due when poll returns.
    fn poll_timeout(&self) -> i32 {
        let now = Instant::now();
        let conn = match &self.conn {
            None => Some(self.next_connect),
            Some(c) => match c.session.deadline {
                Some(d) => Some(d),
                None if c.session.state == State::Ready => {
                    Some(c.session.last_rx + self.core.ping_interval())
                }
                None => None,
            },
        };
        let next = [conn, self.core.next_wake()].into_iter().flatten().min();
        match next {
            None => -1,
            Some(t) if t <= now => 0,
            Some(t) => {
                let ms = (t - now).as_millis() + 1;
                ms.min(i32::MAX as u128) as i32
            }
        }
    }

    fn timers(&mut self) {
        self.core.housekeeping(self.conn.is_some());
        let now = Instant::now();
        let Some(c) = &mut self.conn else {
            if now >= self.next_connect {
                self.connect();
            }
            return;
        };
        let s = &mut c.session;
        if let Some(d) = s.deadline {
            if now >= d {
                let why = match s.state {
                    State::Ready => format!(
                        "no answer to Ping within {}s: connection dead",
                        self.core.cfg.ping_timeout
                    ),
                    _ => "no banner or login answer in time".to_string(),
                };
                let close = if s.state == State::Ready {
                    Close::Lost(why)
                } else {
                    Close::Failed(why)
                };
                self.close(close);
            }
        } else if s.state == State::Ready && now >= s.last_rx + self.core.ping_interval() {
            self.core.seq += 1;
            s.ping_id = format!("ampere-ping-{}", self.core.seq);
            s.out.extend_from_slice(&ami::ping_action(&s.ping_id));
            s.deadline = Some(now + Duration::from_secs(self.core.cfg.ping_timeout));
            debug!("quiet for {}s: sent Ping", self.core.cfg.ping_interval);
            self.flush();
        }
    }

    fn connect(&mut self) {
        let cfg = &self.core.cfg;
        let target = format!("{}:{}", cfg.host, cfg.port);
        let addrs = match (cfg.host.as_str(), cfg.port).to_socket_addrs() {
            Ok(a) => a.collect::<Vec<_>>(),
            Err(e) => {
                self.core.stats.connect_failures += 1;
                self.retry_later(&format!("cannot resolve AMI host {target}: {e}"));
                return;
            }
        };
        let timeout = Duration::from_secs(cfg.connect_timeout);
        let mut last_err = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        last_err = e.to_string();
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    debug!("connected to {a}");
                    self.core.seq += 1;
                    let now = Instant::now();
                    self.conn = Some(Conn {
                        stream,
                        framer: Framer::new(),
                        session: Session {
                            state: State::Banner,
                            out: Vec::new(),
                            login_id: format!("ampere-login-{}", self.core.seq),
                            ping_id: String::new(),
                            last_rx: now,
                            deadline: Some(now + Duration::from_secs(cfg.ping_timeout)),
                        },
                    });
                    return;
                }
                Err(e) => last_err = format!("{a}: {e}"),
            }
        }
        self.core.stats.connect_failures += 1;
        self.retry_later(&format!("cannot connect to AMI at {target}: {last_err}"));
    }

    fn retry_later(&mut self, why: &str) {
        warn!("{why}; retrying in {}s", self.backoff.as_secs());
        self.next_connect = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.core.max_backoff());
    }

    fn close(&mut self, why: Close) {
        let Some(c) = self.conn.take() else { return };
        drop(c);
        match why {
            Close::Lost(msg) => {
                // The session had worked: come back quickly, and back off only if that fails.
                self.backoff = self.core.min_backoff();
                warn!(
                    "AMI connection lost: {msg}; reconnecting in {}s",
                    self.backoff.as_secs()
                );
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.core.max_backoff());
            }
            Close::Failed(msg) => self.retry_later(&msg),
        }
    }

    /// The socket failed or closed: a session that was logged in counts as lost (reconnect
    /// soon), one that never got that far as a failed attempt (back off).
    fn connection_ended(&mut self, msg: String) {
        let ready = self
            .conn
            .as_ref()
            .is_some_and(|c| c.session.state == State::Ready);
        self.close(if ready {
            Close::Lost(msg)
        } else {
            Close::Failed(msg)
        });
    }

    fn flush(&mut self) {
        let Some(c) = &mut self.conn else { return };
        while !c.session.out.is_empty() {
            match c.stream.write(&c.session.out) {
                Ok(0) => break,
                Ok(n) => {
                    c.session.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.connection_ended(format!("write: {e}"));
                    return;
                }
            }
        }
    }

    fn on_socket(&mut self, revents: i16, buf: &mut [u8]) {
        if revents & sys::POLLOUT != 0 {
            self.flush();
        }
        let mut total = 0;
        while total < READ_PER_TURN {
            let Some(c) = &mut self.conn else { return };
            let n = match c.stream.read(buf) {
                Ok(0) => {
                    self.connection_ended("connection closed by Asterisk".to_string());
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.connection_ended(format!("read: {e}"));
                    return;
                }
            };
            total += n;
            let Conn {
                framer, session, ..
            } = c;
            session.last_rx = Instant::now();
            if session.state == State::Ready {
                // Anything from Asterisk proves the connection alive, also in place of a Pong.
                session.deadline = None;
            }
            let core = &mut self.core;
            let mut close = None;
            framer.push(&buf[..n], &mut |item| {
                if close.is_none() {
                    close = core.on_item(session, item);
                }
            });
            core.flush_bans();
            if core.backoff_reset {
                core.backoff_reset = false;
                self.backoff = core.min_backoff();
            }
            if let Some(why) = close {
                self.close(why);
                return;
            }
            self.flush();
        }
    }

    /// Handles pending signals; true means stop.
    fn on_signals(&mut self) -> bool {
        let mut stop = false;
        for sig in self.signals.drain() {
            match sig {
                sys::SIGTERM | sys::SIGINT => {
                    info!("signal {sig}: stopping (bans stay in the chain)");
                    stop = true;
                }
                sys::SIGHUP => {
                    let ami_changed = self.core.reload();
                    if ami_changed {
                        self.close(Close::Lost("AMI settings changed".into()));
                        self.next_connect = Instant::now();
                    }
                }
                sys::SIGUSR1 => info!("{}", self.core.stats(self.conn.is_some()).line()),
                _ => {}
            }
        }
        stop
    }
}

impl Core {
    fn min_backoff(&self) -> Duration {
        Duration::from_secs(self.cfg.reconnect_min)
    }

    fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.cfg.reconnect_max)
    }

    fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.ping_interval)
    }

    fn on_item(&mut self, s: &mut Session, item: Item<'_>) -> Option<Close> {
        let m = match item {
            Item::Banner(b) => {
                if !b.starts_with(b"Asterisk Call Manager/") {
                    warn!("unexpected AMI banner `{}`", printable(b));
                }
                debug!("banner: {}", printable(b));
                s.out.extend_from_slice(&ami::login_action(
                    &self.cfg.user,
                    &self.cfg.pass,
                    &s.login_id,
                ));
                s.state = State::LoggingIn;
                return None;
            }
            Item::Message(m) => m,
        };
        if log::enabled(log::Level::Debug) {
            let text: Vec<String> = m
                .headers()
                .map(|(n, v)| format!("{}: {}", printable(n), printable(v)))
                .collect();
            debug!("<< {}", text.join(" | "));
        }
        match s.state {
            State::Banner => None,
            State::LoggingIn => self.on_login_reply(s, m),
            State::Ready => self.on_ready(s, m),
        }
    }

    fn on_login_reply(&mut self, s: &mut Session, m: &Message) -> Option<Close> {
        if !m.is_response() {
            return None;
        }
        // Asterisk echoes our ActionID; an answer for somebody else's action is not ours.
        if let Some(id) = m.get("ActionID") {
            if id != s.login_id.as_bytes() {
                return None;
            }
        }
        if m.get("Response")
            .is_some_and(|r| r.eq_ignore_ascii_case(b"Success"))
        {
            self.stats.logins += 1;
            s.state = State::Ready;
            s.deadline = None;
            self.backoff_reset = true;
            info!(
                "logged in to AMI at {}:{} as `{}`{}",
                self.cfg.host,
                self.cfg.port,
                self.cfg.user,
                if self.stats.logins > 1 {
                    " (reconnected)"
                } else {
                    ""
                }
            );
            return None;
        }
        self.stats.login_failures += 1;
        let why = printable(m.get("Message").unwrap_or(b"no reason given"));
        error!(
            "AMI login as `{}` refused by {}:{}: {why}. Check the [{}] section of /etc/asterisk/manager.conf (secret, permit/deny, read = security,system) and user/pass in {}",
            self.cfg.user, self.cfg.host, self.cfg.port, self.cfg.user, self.cfg.source
        );
        Some(Close::Failed("login refused".into()))
    }

    fn on_ready(&mut self, s: &mut Session, m: &Message) -> Option<Close> {
        if m.is_response() {
            if m.get("ActionID") == Some(s.ping_id.as_bytes()) {
                debug!("Pong");
            }
            return None;
        }
        match m.get("Event").unwrap_or(b"") {
            b"Shutdown" => {
                let restart = printable(m.get("Restart").unwrap_or(b"?"));
                info!("Asterisk is shutting down (Restart: {restart})");
                return Some(Close::Lost("Asterisk shut down".into()));
            }
            b"FullyBooted" => {
                info!("Asterisk is fully booted");
                return None;
            }
            _ => {}
        }
        let now = self.started.elapsed().as_secs();
        match self.matcher.parse(m) {
            Parsed::Other => None,
            Parsed::BadAddress { kind, raw } => {
                self.engine.note_bad_address();
                if self.warned_bad_address & (1 << kind.index()) == 0 {
                    self.warned_bad_address |= 1 << kind.index();
                    warn!(
                        "{}: RemoteAddress `{}` is not an address; such events are ignored (logged once per event kind)",
                        kind.name(),
                        printable(raw)
                    );
                }
                None
            }
            Parsed::Security(ev) => {
                self.last_event = Some(sys::now_epoch());
                let verdict = self.engine.feed(ev.kind, ev.service, ev.addr, now);
                if let Verdict::Ban(p) = verdict {
                    self.ban(&ev, p);
                } else if ev.kind != EventKind::SuccessfulAuth && ev.service != b"AMI" {
                    debug!(
                        "{} from {} ({}): {:?}",
                        ev.kind.name(),
                        ev.addr,
                        printable(ev.account),
                        verdict
                    );
                } else if ev.service == b"AMI" && ev.kind != EventKind::SuccessfulAuth {
                    // Failed AMI logins are worth a line even from loopback.
                    info!(
                        "AMI {} for account `{}` from {}: {:?}",
                        ev.kind.name(),
                        printable(ev.account),
                        ev.addr,
                        verdict
                    );
                }
                None
            }
        }
    }

    /// Queues a ban; `flush_bans` applies the queue after each read, so that a burst of
    /// bans costs one transaction and one firewall command instead of one each.
    fn ban(&mut self, ev: &SecurityEvent<'_>, penalty: u32) {
        if ev.addr.is_ipv6() && !self.cfg.ipv6 {
            warn!(
                "{} reached the limit ({penalty}) but ipv6 = no: not banned",
                ev.addr
            );
            return;
        }
        self.pending.push(PendingBan {
            addr: ev.addr,
            kind: ev.kind,
            service: printable(ev.service),
            account: String::from_utf8_lossy(&ev.account[..ev.account.len().min(256)]).into_owned(),
            penalty,
        });
    }

    /// The database first, the firewall second: a crash in between is repaired by the
    /// restore at the next start.
    fn flush_bans(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let now = sys::now_epoch();
        let texts: Vec<String> = pending.iter().map(|p| p.addr.to_string()).collect();
        let rows: Vec<NewBan<'_>> = pending
            .iter()
            .zip(&texts)
            .map(|(p, text)| NewBan {
                addr: text,
                now,
                event: p.kind.name(),
                account: &p.account,
            })
            .collect();
        self.wrote();
        let cfg = &self.cfg;
        let results = match self
            .store
            .ban_many(&rows, &|count| cfg.ban_expiry(now, count))
        {
            Ok(r) => r,
            Err(e) => {
                self.stats.store_errors += 1;
                error!("{e}; banning {} in the firewall anyway", texts.join(", "));
                // Same address twice in one batch: one rule is enough.
                let mut seen = std::collections::HashSet::new();
                texts
                    .iter()
                    .map(|t| {
                        seen.insert(t).then(|| Banned {
                            count: 1,
                            expires: cfg.ban_expiry(now, 1),
                        })
                    })
                    .collect()
            }
        };
        let mut fresh = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(b) => fresh.push((i, b)),
                None => {
                    self.stats.already_banned += 1;
                    debug!("{} is already banned", texts[i]);
                }
            }
        }
        let entries: Vec<Entry> = fresh
            .iter()
            .map(|&(i, b)| Entry {
                net: IpNet::from(pending[i].addr),
                timeout: remaining(b.expires, now),
            })
            .collect();
        let applied: Vec<Result<(), firewall::FwError>> = match self.fw.ban_many(&entries) {
            Ok(()) => entries.iter().map(|_| Ok(())).collect(),
            // One bad entry must not cost the others their ban: retry each on its own.
            Err(e) if entries.len() > 1 => {
                warn!(
                    "batch of {} bans failed ({e}); applying them one by one",
                    entries.len()
                );
                entries.iter().map(|e| self.fw.ban(e)).collect()
            }
            Err(e) => vec![Err(e)],
        };
        for ((i, banned), result) in fresh.into_iter().zip(applied) {
            let (p, text) = (&pending[i], &texts[i]);
            let account = printable(p.account.as_bytes());
            match result {
                Ok(()) => {
                    self.stats.bans += 1;
                    let until = banned.expires.map_or_else(
                        || "permanent".to_string(),
                        |e| format!("until {}", crate::admin::format_time(e)),
                    );
                    info!(
                        "ban {text}: {} from account `{account}` ({}), penalty {}; ban #{} {until}",
                        p.kind.name(),
                        p.service,
                        p.penalty,
                        banned.count
                    );
                    self.hooks.banned(text, p.kind.name(), &account);
                }
                Err(e) => {
                    self.stats.firewall_errors += 1;
                    error!(
                        "ban {text} recorded, but the firewall failed (restored at next start): {e}"
                    );
                }
            }
            if let Some(e) = banned.expires {
                self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
            }
        }
    }

    fn read_next_expiry(&mut self) {
        self.expiry_read = Instant::now();
        match self.store.next_expiry() {
            Ok(n) => self.next_expiry = n,
            Err(e) => error!("{e}"),
        }
    }

    /// Lifts the bans whose time is up: database first (the count stays for escalation),
    /// then the firewall.
    fn expire(&mut self) {
        self.wrote();
        let due = match self.store.expire_due(sys::now_epoch()) {
            Ok(d) => d,
            Err(e) => {
                self.stats.store_errors += 1;
                error!("{e}");
                return;
            }
        };
        for addr in due {
            let Ok(net) = config::parse_net(&addr) else {
                continue;
            };
            match self.fw.unban(&net) {
                Ok(()) => {
                    self.stats.unbans += 1;
                    info!("unban {addr}: ban expired");
                    self.hooks.unbanned(&addr, "expired");
                }
                Err(e) => {
                    self.stats.firewall_errors += 1;
                    error!("unban {addr} (expired): {e}");
                }
            }
        }
        self.read_next_expiry();
    }

    fn wrote(&mut self) {
        let now = Instant::now();
        self.unsynced = Some((self.unsynced.map_or(now, |(first, _)| first), now));
    }

    /// When the WAL is to be checkpointed, if it holds unsynced writes.
    fn checkpoint_due(&self) -> Option<Instant> {
        self.unsynced
            .map(|(first, last)| (last + CHECKPOINT_QUIET).min(first + CHECKPOINT_MAX_DELAY))
    }

    /// The earliest of: the next expiry, rereading it, a hook to reap, the stats file.
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let expiry = self.next_expiry.map(|e| {
            let secs = (e - sys::now_epoch()).max(0) as u64;
            now + Duration::from_secs(secs)
        });
        [
            expiry,
            Some(self.expiry_read + EXPIRY_REFRESH),
            self.hooks.next_check(),
            self.next_stats,
            self.checkpoint_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers that do not concern the AMI session.
    fn housekeeping(&mut self, connected: bool) {
        let now = Instant::now();
        if self.next_expiry.is_some_and(|e| e <= sys::now_epoch()) {
            self.expire();
        } else if now >= self.expiry_read + EXPIRY_REFRESH {
            self.read_next_expiry();
        }
        self.hooks.reap();
        if self.checkpoint_due().is_some_and(|t| now >= t) {
            self.unsynced = None;
            if let Err(e) = self.store.checkpoint() {
                error!("{e}");
            }
        }
        if self.next_stats.is_some_and(|t| now >= t) {
            self.write_stats(connected);
            self.next_stats = Some(now + Duration::from_secs(self.cfg.stats_interval));
        }
    }

    fn stats(&self, connected: bool) -> Stats {
        let t = self.engine.table();
        let c = &self.engine.counters;
        let s = &self.stats;
        Stats {
            events: c.events.clone(),
            bans: s.bans,
            unbans: s.unbans,
            already_banned: s.already_banned,
            active_bans: self.store.active_count().unwrap_or(-1),
            protected: c.protected,
            bad_address: c.bad_address,
            firewall_errors: s.firewall_errors,
            store_errors: s.store_errors,
            table_hosts: t.len(),
            table_capacity: t.capacity(),
            table_evictions: t.evictions(),
            connected,
            logins: s.logins,
            login_failures: s.login_failures,
            connect_failures: s.connect_failures,
            last_event: self.last_event,
        }
    }

    fn write_stats(&self, connected: bool) {
        if let Some(path) = &self.cfg.statsfile {
            if let Err(e) = stats::write_atomic(path, &self.stats(connected).prometheus()) {
                error!("cannot write {}: {e}", path.display());
            }
        }
    }

    /// SIGHUP: reread the config, reopen the log. Returns true when the AMI session must be
    /// re-established with new settings.
    fn reload(&mut self) -> bool {
        let loaded = match config::load(&self.cfg_path, self.cfg_explicit) {
            Ok(l) => l,
            Err(e) => {
                error!("reload failed, keeping the running config: {e}");
                let _ = log::reopen();
                return false;
            }
        };
        let mut new = loaded.config;
        if !self.log_override && new.log != self.cfg.log {
            if let Err(e) = log::init(new.log.as_ref().unwrap_or(&log::Target::Stderr)) {
                error!("{e}");
            }
        } else if let Err(e) = log::reopen() {
            error!("{e}");
        }
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let old = &self.cfg;
        let mut kept = Vec::new();
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if new.$field != old.$field {
                    kept.push(stringify!($field));
                    new.$field = old.$field.clone();
                }
            )*};
        }
        keep!(
            db,
            chain,
            iptables,
            ip6tables,
            iptables_restore,
            ip6tables_restore,
            target,
            ipv6,
            table_size
        );
        if !kept.is_empty() {
            warn!("changed {} take effect after a restart", kept.join(", "));
        }
        let reconnect = new.host != old.host
            || new.port != old.port
            || new.user != old.user
            || new.pass != old.pass;
        self.engine.reconfigure(&new);
        self.hooks.reconfigure(&new);
        if new.statsfile.is_some() && self.next_stats.is_none() {
            self.next_stats = Some(Instant::now());
        } else if new.statsfile.is_none() {
            self.next_stats = None;
        }
        self.cfg = new;
        info!("config reloaded from {}", self.cfg.source);
        reconnect
    }
}
