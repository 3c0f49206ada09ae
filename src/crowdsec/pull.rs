//! The bouncer: `GET /v1/decisions/stream` every `crowdsec_poll`, the whole list once
//! (`startup=true`) and then the changes. The answer is read as it arrives and applied in
//! batches through `Bans::pulled`; a decision that would ban a protected address (trust,
//! loopback, the AMI host) or a network wider than any one attacker holds is refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::decisions::{Decision, Item, List, StreamReader};
use super::Retry;
use crate::addr::net_text;
use crate::ban::{Ban, Origin};
use crate::bans::Bans;
use crate::clock;
use crate::engine::Engine;
use crate::http::{Exchange, Request, Step};
use crate::log::printable;
use crate::sys::PollFd;
use crate::{debug, info, warn};

/// Decisions applied together (one transaction, one firewall command): the batch is what
/// memory holds of a stream, whatever its length.
const BATCH: usize = 250;
/// The longest answer read; a longer one is an error (about 450,000 decisions).
const MAX_BODY: u64 = 64 << 20;
/// How long one pull may take, from the connect to the end of the answer.
const LIMIT: Duration = Duration::from_secs(120);
/// Networks wider than these are refused: no one attacker holds more.
const MIN_PREFIX_V4: u8 = 8;
const MIN_PREFIX_V6: u8 = 16;
/// Refusals and skipped entries logged one by one per answer; the rest are counted.
const LOG_EACH: u32 = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pulls: u64,
    pub failures: u64,
    pub banned: u64,
    pub lifted: u64,
    pub refused: u64,
    pub skipped: u64,
    pub over_max: u64,
    /// Unix time of the last complete pull (0: none yet).
    pub last_ok: i64,
}

/// One answer being read.
struct Current {
    ex: Exchange,
    reader: StreamReader,
    startup: bool,
    new: Vec<Ban>,
    deleted: Vec<IpNet>,
    /// What this answer did so far.
    banned: usize,
    known: usize,
    lifted: usize,
    refused: u32,
    skipped: u32,
    over_max: usize,
    /// The start of a body that is not a 200 answer, for the log line.
    error_body: Vec<u8>,
}

pub struct Pull {
    peer: SocketAddr,
    key: String,
    every: Duration,
    max: usize,
    startup: bool,
    next: Instant,
    retry: Retry,
    current: Option<Current>,
    pub counters: Counters,
}

impl Pull {
    pub fn new(peer: SocketAddr, key: &str, every: Duration, max: usize) -> Pull {
        Pull {
            peer,
            key: key.to_string(),
            every,
            max,
            startup: true,
            next: Instant::now(),
            retry: Retry::new(),
            current: None,
            counters: Counters::default(),
        }
    }

    pub fn same_settings(&self, peer: SocketAddr, key: &str) -> bool {
        self.peer == peer && self.key == key
    }

    pub fn set_limits(&mut self, every: Duration, max: usize) {
        self.next = self.next.min(Instant::now() + every);
        self.every = every;
        self.max = max;
    }

    pub fn next_timer(&self) -> Instant {
        self.current.as_ref().map_or(self.next, |c| c.ex.deadline())
    }

    pub fn poll_fd(&self) -> Option<PollFd> {
        self.current.as_ref().map(|c| c.ex.poll_fd())
    }

    /// Starts a pull when one is due; gives up one that ran out of time.
    pub fn tick(&mut self, now: Instant) {
        if let Some(c) = &self.current {
            if now >= c.ex.deadline() {
                let step = c.ex.timed_out();
                self.ended(step, now);
            }
            return;
        }
        if now < self.next {
            return;
        }
        let target = format!("/v1/decisions/stream?startup={}", self.startup);
        let req = Request {
            method: "GET",
            target: &target,
            headers: &[("X-Api-Key", &self.key)],
            body: b"",
        };
        match Exchange::start(self.peer, &req, MAX_BODY, LIMIT) {
            Ok(ex) => {
                self.current = Some(Current {
                    ex,
                    reader: StreamReader::new(),
                    startup: self.startup,
                    new: Vec::new(),
                    deleted: Vec::new(),
                    banned: 0,
                    known: 0,
                    lifted: 0,
                    refused: 0,
                    skipped: 0,
                    over_max: 0,
                    error_body: Vec::new(),
                })
            }
            Err(e) => self.failed(&format!("cannot connect: {e}"), now),
        }
    }

    /// The socket is ready: reads on, applying each full batch.
    pub fn ready(&mut self, bans: &mut Bans, engine: &Engine) {
        let Some(c) = &mut self.current else {
            return;
        };
        let max = self.max;
        let Current {
            ex,
            reader,
            new,
            deleted,
            banned,
            known,
            lifted,
            refused,
            skipped,
            over_max,
            error_body,
            ..
        } = c;
        // One clock read per turn: each decision's expiry and kernel timeout count from it.
        let now = clock::now_epoch();
        let mut apply = |new: &mut Vec<Ban>, deleted: &mut Vec<IpNet>| -> Result<(), String> {
            let p = bans.pulled(new, deleted, max, now)?;
            *banned += p.banned;
            *known += p.known;
            *lifted += p.lifted;
            *over_max += p.over_max;
            new.clear();
            deleted.clear();
            Ok(())
        };
        let step = ex.ready(&mut |status, bytes| {
            if status != 200 {
                let room = 512usize.saturating_sub(error_body.len());
                error_body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                return Ok(());
            }
            let mut full = false;
            reader
                .feed(bytes, &mut |item| {
                    admit(item, engine, now, new, deleted, refused, skipped);
                    full |= new.len() + deleted.len() >= BATCH;
                })
                .map_err(|e| format!("not a decision stream: {e}"))?;
            if full {
                apply(new, deleted)?;
            }
            Ok(())
        });
        let step = match step {
            Step::Done(200) => match reader.finish() {
                Ok(()) => match apply(new, deleted) {
                    Ok(()) => Step::Done(200),
                    Err(e) => Step::Failed(e),
                },
                Err(e) => Step::Failed(format!("not a decision stream: {e}")),
            },
            s => s,
        };
        if step != Step::Pending {
            self.ended(step, Instant::now());
        }
    }

    fn ended(&mut self, step: Step, now: Instant) {
        let Some(c) = self.current.take() else {
            return;
        };
        self.counters.banned += c.banned as u64;
        self.counters.lifted += c.lifted as u64;
        self.counters.refused += u64::from(c.refused);
        self.counters.skipped += u64::from(c.skipped);
        self.counters.over_max += c.over_max as u64;
        let what = format!(
            "{} new ban(s), {} lifted, {} known already, {} refused, {} skipped{}",
            c.banned,
            c.lifted,
            c.known,
            c.refused,
            c.skipped,
            if c.over_max > 0 {
                format!(", {} over crowdsec_max ({})", c.over_max, self.max)
            } else {
                String::new()
            }
        );
        match step {
            Step::Done(200) => {
                self.counters.pulls += 1;
                self.counters.last_ok = clock::now_epoch();
                if self.retry.succeeded() {
                    info!("CrowdSec LAPI at {} answers again", self.peer);
                }
                let changed =
                    c.banned + c.lifted + c.known + c.over_max > 0 || c.refused + c.skipped > 0;
                if changed || c.startup {
                    info!(
                        "CrowdSec decisions{}: {what}",
                        if c.startup { " (all)" } else { "" }
                    );
                } else {
                    debug!("CrowdSec decisions: nothing new");
                }
                self.startup = false;
                self.next = now + self.every;
            }
            Step::Done(status) => {
                let body = printable(&c.error_body);
                let hint = if status == 403 || status == 401 {
                    " (is crowdsec_bouncer_key a key from `cscli bouncers add`?)"
                } else {
                    ""
                };
                self.failed(&format!("answered {status}{hint}: {body}"), now);
            }
            Step::Failed(e) => {
                let so_far = if c.banned + c.lifted > 0 {
                    format!(" (applied before it: {what})")
                } else {
                    String::new()
                };
                self.failed(&format!("{e}{so_far}"), now);
            }
            Step::Pending => unreachable!("an exchange ends done or failed"),
        }
    }

    /// A pull failed: the next one reads the whole list again (LAPI may count the changes
    /// it sent as delivered), after a delay that grows while it keeps failing.
    fn failed(&mut self, why: &str, now: Instant) {
        self.counters.failures += 1;
        self.startup = true;
        let msg = format!("CrowdSec LAPI at {}: {why}", self.peer);
        self.next = now + self.retry.failed(&msg, false);
    }
}

/// One entry of the stream: a ban or deletion for the batch, or logged and counted.
fn admit(
    item: Item,
    engine: &Engine,
    now: i64,
    new: &mut Vec<Ban>,
    deleted: &mut Vec<IpNet>,
    refused: &mut u32,
    skipped: &mut u32,
) {
    let d: Decision = match item {
        Item::Decision(d) => d,
        Item::Skipped { list, value, why } => {
            *skipped += 1;
            if *skipped <= LOG_EACH {
                warn!(
                    "CrowdSec decision for `{}` in `{}` left out: {why}",
                    printable(value.as_bytes()),
                    list.as_str()
                );
            }
            return;
        }
    };
    if d.list == List::Deleted {
        deleted.push(d.net);
        return;
    }
    let wide = match d.net {
        IpNet::V4(n) => n.prefix_len() < MIN_PREFIX_V4,
        IpNet::V6(n) => n.prefix_len() < MIN_PREFIX_V6,
    };
    let why = match engine.overlaps(&d.net) {
        Some(p) => Some(format!(
            "it takes in {p}, which is protected (trust, loopback or the AMI host)"
        )),
        None if wide => Some(format!(
            "wider than /{MIN_PREFIX_V4} (IPv4) or /{MIN_PREFIX_V6} (IPv6)"
        )),
        None => None,
    };
    if let Some(why) = why {
        *refused += 1;
        if *refused <= LOG_EACH {
            let from = if d.scenario.is_empty() && d.origin.is_empty() {
                String::new()
            } else {
                format!(
                    " ({}, origin {})",
                    printable(d.scenario.as_bytes()),
                    printable(d.origin.as_bytes())
                )
            };
            warn!(
                "CrowdSec decision to ban {}{from} refused: {why}",
                net_text(&d.net)
            );
        }
        return;
    }
    let mut ban = Ban::new(d.net, &d.scenario, "", 0, Origin::Crowdsec, now);
    ban.service = d.origin;
    ban.expires = Some(now.saturating_add(d.seconds));
    new.push(ban);
}
