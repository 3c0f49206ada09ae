//! CrowdSec's Local API (LAPI): Ampere as a watcher (it pushes its own bans as alerts,
//! `push`) and as a bouncer (it applies the decisions LAPI holds, `pull`). Each is at most
//! one HTTP exchange at a time, one more fd in the daemon's `poll`; neither ever makes the
//! loop wait (`http`).

pub mod decisions;
pub mod pull;
pub mod push;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::ban::{Ban, Origin};
use crate::bans::Bans;
use crate::clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::info;
use crate::sys::PollFd;

use pull::Pull;
use push::{Alert, Push};

/// After a failed exchange: the first retry, doubling up to the last. A refused connect to
/// a LAPI on the host or its network costs microseconds, so the last stays short.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// When a role tries again after failures, and whether it is in an outage (logged once,
/// at its start, and at its end by the caller).
struct Retry {
    delay: Duration,
    failing: bool,
}

impl Retry {
    fn new() -> Retry {
        Retry {
            delay: RETRY_FIRST,
            failing: false,
        }
    }

    /// A failure: `msg` is logged (as `error`, or `warn` when `mild`) at the first of an
    /// outage, at debug level after; the delay before the next try.
    fn failed(&mut self, msg: &str, mild: bool) -> Duration {
        let delay = self.delay;
        let line = format!("{msg}; next try in {}s", delay.as_secs());
        if self.failing {
            crate::debug!("{line}");
        } else if mild {
            crate::warn!("{line}");
        } else {
            crate::error!("{line}");
        }
        self.failing = true;
        self.delay = (self.delay * 2).min(RETRY_MAX);
        delay
    }

    /// A success: true when it ends an outage.
    fn succeeded(&mut self) -> bool {
        self.delay = RETRY_FIRST;
        std::mem::replace(&mut self.failing, false)
    }
}

/// What the two roles counted, for the stats file and SIGUSR1.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub pull: Option<pull::Counters>,
    /// The push's counters and the alerts waiting in its queue.
    pub push: Option<(push::Counters, usize)>,
}

pub struct Lapi {
    pull: Option<Pull>,
    push: Option<Push>,
    /// `crowdsec_duration`: what a permanent ban is pushed as.
    permanent: u64,
}

impl Lapi {
    pub fn new(cfg: &Config) -> Lapi {
        let mut l = Lapi {
            pull: None,
            push: None,
            permanent: cfg.crowdsec.duration,
        };
        l.reconfigure(cfg);
        l
    }

    /// Takes new settings: a role whose address or credentials changed starts afresh (the
    /// alerts waiting are kept); one that is no longer set stops.
    pub fn reconfigure(&mut self, cfg: &Config) {
        let c = &cfg.crowdsec;
        self.permanent = c.duration;
        let every = Duration::from_secs(c.poll);
        match (c.url.filter(|_| c.pulls()), &mut self.pull) {
            (Some(url), Some(p)) if p.same_settings(url, &c.bouncer_key) => {
                p.set_limits(every, c.max)
            }
            (Some(url), _) => {
                info!(
                    "pulling CrowdSec decisions from http://{url} every {}s",
                    c.poll
                );
                self.pull = Some(Pull::new(url, &c.bouncer_key, every, c.max));
            }
            (None, _) => self.pull = None,
        }
        match (c.url.filter(|_| c.pushes()), &mut self.push) {
            (Some(url), Some(p)) if p.same_settings(url, &c.login, &c.password) => {}
            (Some(url), old) => {
                info!("pushing bans to CrowdSec at http://{url} as `{}`", c.login);
                let mut p = Push::new(url, &c.login, &c.password);
                if let Some(old) = old {
                    old.take_queue().into_iter().for_each(|a| p.queue(a));
                }
                self.push = Some(p);
            }
            (None, _) => self.push = None,
        }
    }

    /// A ban the daemon decided (never one that came from LAPI): pushed when it can be.
    pub fn banned(&mut self, b: &Ban) {
        // Not a ban on weak evidence: a forged packet must not ban its victim fleet-wide.
        let ours = b.origin == Origin::Daemon && b.evidence == crate::score::Evidence::Strong;
        if let Some(p) = self.push.as_mut().filter(|_| ours) {
            p.queue(Alert::of(b, self.permanent, clock::now_epoch()));
        }
    }

    /// What the pulls changed since the last call, for the daemon to tell.
    pub fn take_changes(&mut self) -> crate::bans::Changes {
        self.pull
            .as_mut()
            .map(Pull::take_changes)
            .unwrap_or_default()
    }

    pub fn next_timer(&self) -> Option<Instant> {
        let pull = self.pull.as_ref().map(Pull::next_timer);
        let push = self.push.as_ref().and_then(Push::next_timer);
        pull.into_iter().chain(push).min()
    }

    pub fn tick(&mut self, now: Instant, bans: &mut Bans) {
        if let Some(p) = &mut self.pull {
            p.tick(now, bans);
        }
        if let Some(p) = &mut self.push {
            p.tick(now);
        }
    }

    /// The sockets of the exchanges under way: the pull's first, then the push's.
    pub fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        fds.extend(self.pull.as_ref().and_then(Pull::poll_fd));
        fds.extend(self.push.as_ref().and_then(Push::poll_fd));
    }

    /// `fds` as `poll_fds` gave them, after `poll`.
    pub fn ready(&mut self, fds: &[PollFd], bans: &mut Bans, engine: &Engine) {
        let mut fds = fds.iter();
        if let Some(p) = &mut self.pull {
            if p.poll_fd().is_some() && fds.next().is_some_and(|f| f.revents != 0) {
                p.ready(bans, engine);
            }
        }
        if let Some(p) = &mut self.push {
            if p.poll_fd().is_some() && fds.next().is_some_and(|f| f.revents != 0) {
                p.ready();
            }
        }
    }

    /// `status` lines: what each role did, and whether it works now.
    /// Each role's counters, for the stats (None: the role is off).
    pub fn counters(&self) -> Counters {
        Counters {
            pull: self.pull.as_ref().map(|p| p.counters),
            push: self.push.as_ref().map(|p| (p.counters, p.queued())),
        }
    }

    pub fn describe(&self, o: &mut String) {
        if let Some(p) = &self.pull {
            let c = &p.counters;
            let _ = writeln!(
                o,
                "crowdsec pull: {} pulls ({} failed), last {}; {} banned, {} lifted, {} refused, {} skipped, {} over crowdsec_max",
                c.pulls,
                c.failures,
                if c.last_ok == 0 {
                    "never".to_string()
                } else {
                    clock::format_time(c.last_ok)
                },
                c.banned,
                c.lifted,
                c.refused,
                c.skipped,
                c.over_max
            );
        }
        if let Some(p) = &self.push {
            let c = &p.counters;
            let _ = writeln!(
                o,
                "crowdsec push: {} pushed, {} waiting, {} dropped (queue full), {} refused by LAPI, {} logins, {} failures",
                c.pushed,
                p.queued(),
                c.dropped,
                c.rejected,
                c.logins,
                c.failures
            );
        }
    }
}
