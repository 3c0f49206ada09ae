//! Ampere's main job: one blocking, single-threaded poll(2) loop over the AMI socket and a
//! signal self-pipe, with its timers (SIGHUP reload in `daemon/reload.rs`). The work is elsewhere: the AMI
//! session in `session`, message to verdict in `judge`, database and firewall in `bans`.

use std::path::PathBuf;

use std::time::{Duration, Instant};

use crate::ami::Message;
use crate::bans::Bans;
use crate::clock;
use crate::config::{self, Config};
use crate::control::proto::{Answer, Request};
use crate::control::Control;
use crate::crowdsec::Lapi;
use crate::error::Error;
use crate::firewall;
use crate::follow::Follower;
use crate::hook::Hooks;
use crate::judge::{Judge, Time};
use crate::live_admin;
use crate::log::printable;
use crate::own::OwnNets;
use crate::report::{self, EventRate, Live};
use crate::resolver::{self, Resolver};
use crate::score::EventKind;
use crate::session::{Link, Read, Settings};
use crate::sip_guard::SipGuard;
use crate::sys::{self, SignalPipe};
use crate::{debug, error, info, warn};

mod known;
mod logdoor;
mod pace;
mod protect;
mod publish;
mod reload;
mod sources;

use sources::{PollSet, Source, Token};

/// Bytes read per poll turn at most, so that signals are looked at between bursts.
const READ_PER_TURN: usize = 1 << 18;

pub fn run(cfg: Config, cfg_path: Option<PathBuf>, logfile: Option<PathBuf>) -> Result<(), Error> {
    clock::read_test_clock();
    info!(
        "{} starting: config {}, chain {}, database {}",
        crate::version(),
        cfg.source,
        cfg.chain,
        cfg.db.display()
    );
    debug!("effective config:\n{}", cfg.describe());
    // First of all, so that a SIGHUP from logrotate or a SIGUSR1 during a long restore waits
    // in the pipe instead of killing the process.
    let signals = SignalPipe::install(&[sys::SIGTERM, sys::SIGINT, sys::SIGHUP, sys::SIGUSR1])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    // Before the firewall is touched: a second daemon must not flush the first one's bans.
    let control = Control::bind(&cfg.socket)?;
    // The trusted names are looked up while the bans are restored, and waited for (at most
    // `resolver::LIMIT`) before the first event is read.
    let mut resolver = Resolver::new(&cfg);
    resolver.tick(Instant::now());
    let fw = firewall::backend(&cfg);
    fw.prepare()?;
    fw.keep_running();
    let mut bans = Bans::open(&cfg, fw)?.for_daemon();
    bans.set_audit_interval(Duration::from_secs(cfg.audit_interval));
    let now = clock::now_epoch();
    if !clock::is_set(now) {
        warn!(
            "the wall clock is not set ({}): no ban expires and the kernel gets no timeouts until it is; bans made meanwhile are re-timed then",
            clock::format_time(now)
        );
    }
    let restored = bans.restore(now)?;
    info!("chain flushed, {restored} stored ban(s) restored");
    if let Some(note) = firewall::slow_note(cfg.backend, restored as i64) {
        warn!("{note}");
    }
    bans.check_path();
    bans.audit_in_child();
    resolver.wait();
    let mut judge = Judge::new(&cfg);
    judge
        .engine
        .set_trusted_names(&resolver::networks(resolver.names()));
    let mut own = OwnNets::default();
    match own.read(now) {
        Ok(_) => info!("the PBX's own networks (never banned as a whole): {}", own.describe()),
        Err(e) => error!("cannot read the interfaces' addresses: {e}; the PBX's own addresses are not protected until they can be read"),
    }
    judge.engine.set_own(&own);
    let started = Instant::now();
    let started_at = clock::now_epoch();
    judge.engine.set_wall_base(started_at);
    // Before the first event: a phone's keepalive right after a restart is its own.
    known::load(&mut judge, &mut bans, &cfg, started_at);
    let mut d = Daemon {
        resolver,
        lapi: Lapi::new(&cfg),
        lift_due: None,
        pace: pace::Pace::default(),
        sip_guard: SipGuard::new(&cfg, judge.engine.protected()),
        judge,
        link: Link::new(Settings::from(&cfg)),
        bans,
        hooks: Hooks::new(&cfg),
        cfg_explicit: cfg_path.is_some(),
        cfg_path: cfg_path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH)),
        log_override: logfile.is_some(),
        started,
        started_at,
        // Forgetting is due at once: a box that reboots daily would never reach an hour.
        forget_due: (started, 0),
        own,
        own_due: started + crate::own::REFRESH,
        log_door: cfg
            .asterisk_log
            .as_deref()
            .map(|p| Follower::new(p, Instant::now())),
        log_through_ban: 0,
        iax2_warned: false,
        longest_turn: Duration::ZERO,
        control: Some(control),
        rate: EventRate::default(),
        stats_due: cfg.statsfile.as_ref().map(|_| Instant::now()),
        last_event: None,
        unset_clock: (!clock::is_set(now)).then(|| (Instant::now(), now)),
        signals,
        cfg,
    };
    // A stored ban of an address trusted since is lifted now.
    d.lift_protected();
    d.run();
    d.bans.before_stop(&d.cfg, clock::now_epoch());
    d.sync_guard(true);
    d.write_stats();
    info!("stopped; {}", d.stats().line());
    Ok(())
}

struct Daemon {
    cfg: Config,
    cfg_path: PathBuf,
    cfg_explicit: bool,
    /// `-o FILE` was given: `log =` in a reloaded config does not move the log.
    log_override: bool,
    judge: Judge,
    link: Link,
    bans: Bans,
    hooks: Hooks,
    signals: SignalPipe,
    /// The origin of the monotonic seconds scoring uses, and the wall clock then.
    started: Instant,
    started_at: i64,
    /// The control socket (taken out while it calls back into the daemon).
    control: Option<Control>,
    /// Security events per second, for `status`.
    rate: EventRate,
    stats_due: Option<Instant>,
    /// Unix time of the latest security event.
    last_event: Option<i64>,
    /// The per-source SIP limit in the firewall: blind guard or flood guard.
    sip_guard: SipGuard,
    /// While the wall clock is not set: a monotonic instant and the wall clock then, to
    /// tell by how much it jumps.
    unset_clock: Option<(Instant, i64)>,
    /// The addresses of the `trust = NAME` entries.
    resolver: Resolver,
    /// CrowdSec's Local API, as watcher and bouncer.
    lapi: Lapi,
    /// When to try again to lift the bans of newly protected addresses (the kernel lock
    /// was held by an `ampere -a`).
    lift_due: Option<Instant>,
    /// Reads the AMI socket in batches under a flood.
    pace: pace::Pace,
    /// When known hosts not seen for `known_forget` are next forgotten.
    forget_due: (Instant, i64),
    /// The PBX's own addresses and links, and when they are read again.
    own: OwnNets,
    own_due: Instant,
    /// Asterisk's log, followed for what AMI does not report (`asterisk_log`).
    log_door: Option<Follower>,
    /// The log door's events from addresses banned already (the ban does not reach their
    /// port), and whether the admin was told that IAX2 runs without the log door.
    log_through_ban: u64,
    iax2_warned: bool,
    /// The longest the loop worked between two polls.
    longest_turn: Duration,
}

impl Daemon {
    fn run(&mut self) {
        let mut buf = vec![0u8; 65536];
        // Kept from turn to turn: at a steady event rate the loop turns thousands of times a
        // second, and each turn's allocation showed in its CPU.
        let mut set = PollSet::default();
        let mut woke: Option<Instant> = None;
        loop {
            self.timers();
            self.sync_guard(false);
            set.clear();
            set.add(Token::Signals, &self.signals);
            set.add(Token::Ami, &self.link);
            if self.pace.holding(Instant::now()) {
                set.mask(Token::Ami, sys::POLLIN);
            }
            set.add(Token::Resolver, &self.resolver);
            set.add(Token::Lapi, &self.lapi);
            set.add(Token::Control, &self.control);
            set.add(Token::LogDoor, &self.log_door);
            set.add(Token::Survey, &self.bans);
            // The loop's work between two polls: what a ban waits for at worst (`status`).
            if let Some(w) = woke {
                self.longest_turn = self.longest_turn.max(w.elapsed());
            }
            let polled = set.poll(self.poll_timeout());
            woke = Some(Instant::now());
            if let Err(e) = polled {
                error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            clock::read_test_clock();
            if let Some(mut c) = self.control.take() {
                c.ready(set.of(Token::Control), &mut |r| self.answer(r));
                self.control = Some(c);
            }
            if set.revents(Token::Survey) != 0 {
                self.bans.survey_ready(clock::now_epoch());
            }
            self.on_log_door(set.revents(Token::LogDoor) != 0);
            if set.revents(Token::Resolver) != 0 && self.resolver.ready() {
                self.trust_changed();
            }
            self.lapi
                .ready(set.of(Token::Lapi), &mut self.bans, &self.judge.engine);
            let pulled = self.lapi.take_changes();
            self.publish(pulled);
            let ami = set.revents(Token::Ami);
            if ami != 0 && self.link.resolving() {
                self.link.resolve_ready();
            } else if ami != 0 && self.link.dialing() {
                self.link.connect_ready();
            } else if ami != 0 {
                self.on_ami(ami, &mut buf);
                self.sync_guard(false);
                self.check_iax2();
            }
            if set.revents(Token::Signals) != 0 && self.on_signals() {
                self.link.logoff();
                return;
            }
        }
    }

    /// Puts the blind guard up while no session is logged in, the flood guard (if any) while
    /// one is, and takes both down at `stop`.
    fn sync_guard(&mut self, stop: bool) {
        let logged_in = self.link.logged_in();
        self.sip_guard.sync(self.bans.firewall(), logged_in, stop);
    }

    /// A control-socket request, answered from the daemon's state.
    fn answer(&mut self, request: Request) -> Answer {
        let (answer, changes) = match request {
            Request::Add(l) => live_admin::add(&mut self.bans, &self.judge.engine, &self.cfg, l),
            Request::Del(l) => live_admin::del(&mut self.bans, &mut self.judge.engine, l),
            Request::Status { keys } => {
                return self.report(&mut |live| Answer::Text(report::status(live, keys)))
            }
            Request::Why(a) => return self.report(&mut |live| report::why_live(live, &a)),
        };
        self.publish(changes);
        answer
    }

    /// `status` and `why`, answered from the daemon's state.
    fn report(&mut self, answer: &mut dyn FnMut(&mut Live) -> Answer) -> Answer {
        let log_door = self.describe_log_door();
        let mut live = Live {
            cfg: &self.cfg,
            engine: &self.judge.engine,
            link: &self.link,
            bans: &self.bans,
            started: self.started,
            started_at: self.started_at,
            last_event: self.last_event,
            rate: &mut self.rate,
            sip_limit: self.sip_guard.describe(),
            names: self.resolver.names(),
            crowdsec: {
                let mut lines = String::new();
                self.lapi.describe(&mut lines);
                lines
            },
            own: &self.own,
            log_door,
            longest_turn: self.longest_turn,
        };
        answer(&mut live)
    }

    /// Milliseconds until the next timer, rounded up so that it is due when poll returns:
    /// the sources' and the daemon's own (`*_due`).
    fn poll_timeout(&self) -> i32 {
        let now = Instant::now();
        let sources: [&dyn Source; 8] = [
            &self.link,
            &self.bans,
            &self.hooks,
            &self.control,
            &self.resolver,
            &self.lapi,
            &self.pace,
            &self.log_door,
        ];
        let own = [
            self.stats_due,
            self.lift_due,
            Some(self.forget_due.0),
            Some(self.own_due),
        ];
        let next = sources
            .iter()
            .map(|s| s.next_timer())
            .chain(own)
            .flatten()
            .min();
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
        if let Some((at, wall)) = self.unset_clock {
            let now = clock::now_epoch();
            if clock::is_set(now) {
                self.bans
                    .clock_was_set(now - (wall + at.elapsed().as_secs() as i64));
                self.unset_clock = None;
            }
        }
        let lifted = self.bans.timers(&self.cfg, clock::now_epoch);
        self.publish(lifted);
        self.hooks.reap();
        let now = Instant::now();
        if self.stats_due.is_some_and(|t| now >= t) {
            self.write_stats();
            self.stats_due = Some(now + Duration::from_secs(self.cfg.stats_interval));
        }
        self.link.tick(now);
        if let Some(c) = &mut self.control {
            c.expire(now);
        }
        self.resolver.tick(now);
        self.lapi.tick(now, &mut self.bans);
        let pulled = self.lapi.take_changes();
        self.publish(pulled);
        if self.lift_due.is_some_and(|t| now >= t) {
            self.lift_protected();
        }
        if now >= self.own_due {
            self.own_due = now + crate::own::REFRESH;
            self.read_own();
        }
        // Due by either clock: the wall clock leaps on a box that learns the time late (and
        // on the tests' clock), and forgetting follows it.
        let epoch = clock::now_epoch();
        if now >= self.forget_due.0 || epoch >= self.forget_due.1 {
            let sec = clock::mono_secs(self.started);
            let wait = known::forget(&mut self.judge, &mut self.bans, &self.cfg, epoch, sec);
            self.forget_due = (now + wait, epoch.saturating_add(wait.as_secs() as i64));
        }
        // The AMI host as this connection resolved it is never banned, also when it is a
        // name that did not resolve at start.
        self.judge.engine.set_ami_peer(self.link.peer());
    }

    fn on_ami(&mut self, revents: i16, buf: &mut [u8]) {
        if revents & sys::POLLOUT != 0 {
            self.link.flush();
        }
        let mut total = 0;
        while total < READ_PER_TURN {
            let n = match self.link.read(buf) {
                Read::Data(n) => n,
                Read::Idle | Read::Closed => break,
            };
            total += n;
            self.pace.read(Instant::now());
            let mut security = 0u32;
            let open = {
                let Daemon {
                    link,
                    judge,
                    bans,
                    started,
                    ..
                } = self;
                // One reading of each clock per read: the events of a read are judged at once.
                let time = Time::At {
                    mono: clock::mono_secs(*started),
                    wall: clock::now_epoch(),
                };
                link.received(&buf[..n], &mut |m| {
                    security += u32::from(on_event(judge, bans, m, time));
                })
            };
            if security > 0 {
                self.last_event = Some(clock::now_epoch());
                self.rate.add(clock::mono_secs(self.started), security);
            }
            self.settle_read();
            // A read that did not fill the buffer took all there was: asking again would
            // only hear EAGAIN (a third syscall per wake-up at a steady event rate); poll
            // reports what comes next.
            if !open || n < buf.len() {
                return;
            }
        }
    }

    /// After a read (of AMI, or of the log door): its bans go out together (one
    /// transaction, one firewall command), what was learned is stored, subnets escalate, and
    /// it is all told once.
    fn settle_read(&mut self) {
        let mut changes = self.bans.flush(&self.cfg, clock::now_epoch);
        known::store(&mut self.judge, &mut self.bans, &self.cfg);
        let subnets = self
            .bans
            .escalate(&self.cfg, &changes.banned, self.judge.engine.admission());
        changes.extend(subnets);
        self.publish(changes);
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
                sys::SIGHUP => self.reload(),
                sys::SIGUSR1 => info!("{}", self.stats().line()),
                _ => {}
            }
        }
        stop
    }
}

/// One message of a logged-in session, through the pipeline: a ban it asks for is queued
/// (`flush` applies the read's bans together). Returns whether it was a security event.
fn on_event(judge: &mut Judge, bans: &mut Bans, m: &Message, time: Time) -> bool {
    let Some(judged) = judge.judge(m, time) else {
        return false;
    };
    let (ev, verdict) = (&judged.event, judged.verdict);
    if let Some(req) = judged.request() {
        bans.queue(req);
    } else if ev.service == b"AMI" && ev.kind != EventKind::SuccessfulAuth {
        // Failed AMI logins are worth a line even from loopback.
        info!(
            "AMI {} for account `{}` from {}: {verdict:?}",
            ev.kind.name(),
            printable(ev.account),
            ev.addr(),
        );
    } else if ev.kind != EventKind::SuccessfulAuth && ev.service != b"AMI" {
        debug!(
            "{} from {} ({}): {verdict:?}",
            ev.kind.name(),
            ev.addr(),
            printable(ev.account),
        );
    }
    true
}
