//! The bouncer: `GET /v1/decisions/stream` every `crowdsec_poll`, the whole list once
//! (`startup=true`) and then the changes. The answer is read as it arrives and applied in
//! batches through `Bans::pulled`; a decision the admission check refuses (`admission.rs`:
//! a protected address, IPv6 while it is off, a network wider than any one attacker holds)
//! is left out and logged.
//! After a whole list, the bans from CrowdSec it no longer holds are ended, a batch per
//! turn of the loop.

use crate::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::decisions::{Decision, Item, List, StreamReader};
use super::Retry;
use crate::addr::net_text;
use crate::admission::Door;
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::bans::{Bans, Changes};
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

/// The decisions of an answer not applied yet, and what was left out of them.
#[derive(Default)]
struct Batch {
    /// A whole list: its `deleted` are not needed (what it does not hold is ended after it).
    startup: bool,
    new: Vec<BanRequest>,
    deleted: Vec<IpNet>,
    refused: u32,
    skipped: u32,
}

/// One answer being read.
struct Current {
    ex: Exchange,
    reader: StreamReader,
    /// This pull's number (`Bans::pulled`).
    number: i64,
    batch: Batch,
    /// What this answer did so far.
    banned: usize,
    known: usize,
    lifted: usize,
    over_max: usize,
    /// The start of a body that is not a 200 answer, for the log line.
    error_body: Vec<u8>,
}

/// A whole list read: the bans from CrowdSec that it did not hold are being ended.
struct Unlisting {
    number: i64,
    lifted: usize,
    /// Decisions the list held that `crowdsec_max` left out: when ending the others made
    /// room, the list is read again.
    over_max: usize,
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
    /// The latest pull's number; None until read from the database.
    number: Option<i64>,
    unlisting: Option<Unlisting>,
    /// What the pulls changed since the daemon last took it, for it to tell (`publish`).
    changes: Changes,
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
            number: None,
            unlisting: None,
            changes: Changes::default(),
            counters: Counters::default(),
        }
    }

    /// What the pulls changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
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
        if self.unlisting.is_some() {
            return Instant::now();
        }
        self.current.as_ref().map_or(self.next, |c| c.ex.deadline())
    }

    pub fn poll_fd(&self) -> Option<PollFd> {
        self.current.as_ref().map(|c| c.ex.poll_fd())
    }

    /// Starts a pull when one is due; gives up one that ran out of time; ends a batch of
    /// the bans a whole list did not hold.
    pub fn tick(&mut self, now: Instant, bans: &mut Bans) {
        if self.unlisting.is_some() {
            self.unlist(bans, now);
            return;
        }
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
        let number = match self.number.map_or_else(|| bans.last_pull(), Ok) {
            Ok(n) => n + 1,
            Err(e) => return self.failed(&format!("cannot number the pull: {e}"), now),
        };
        self.number = Some(number);
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
                    number,
                    batch: Batch {
                        startup: self.startup,
                        ..Batch::default()
                    },
                    banned: 0,
                    known: 0,
                    lifted: 0,
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
            number,
            batch,
            banned,
            known,
            lifted,
            over_max,
            error_body,
        } = c;
        // One clock read per turn: each decision's expiry and kernel timeout count from it.
        let now = clock::now_epoch();
        let gained = &mut self.changes;
        let mut apply = |batch: &mut Batch| -> Result<(), Error> {
            let p = bans.pulled(&mut batch.new, &batch.deleted, max, now, *number)?;
            gained.extend(p.changes);
            *banned += p.banned;
            *known += p.known;
            *lifted += p.lifted;
            *over_max += p.over_max;
            batch.new.clear();
            batch.deleted.clear();
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
                    admit(item, engine, now, batch);
                    full |= batch.new.len() + batch.deleted.len() >= BATCH;
                })
                .map_err(|e| Error::Protocol(format!("not a decision stream: {e}")))?;
            if full {
                apply(batch)?;
            }
            Ok(())
        });
        let step = match step {
            Step::Done(200) => match reader.finish() {
                Ok(()) => match apply(batch) {
                    Ok(()) => Step::Done(200),
                    Err(e) => Step::Failed(e.to_string()),
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
        let startup = c.batch.startup;
        let (refused, skipped) = (c.batch.refused, c.batch.skipped);
        self.counters.banned += c.banned as u64;
        self.counters.lifted += c.lifted as u64;
        self.counters.refused += u64::from(refused);
        self.counters.skipped += u64::from(skipped);
        self.counters.over_max += c.over_max as u64;
        let what = format!(
            "{} new ban(s), {} lifted, {} known already, {refused} refused, {skipped} skipped{}",
            c.banned,
            c.lifted,
            c.known,
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
                    c.banned + c.lifted + c.known + c.over_max > 0 || refused + skipped > 0;
                if changed || startup {
                    info!(
                        "CrowdSec decisions{}: {what}",
                        if startup { " (all)" } else { "" }
                    );
                } else {
                    debug!("CrowdSec decisions: nothing new");
                }
                self.startup = false;
                self.next = now + self.every;
                if startup {
                    self.unlisting = Some(Unlisting {
                        number: c.number,
                        lifted: 0,
                        over_max: c.over_max,
                    });
                }
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

    /// Ends a batch of the bans from CrowdSec that the latest whole list did not hold.
    fn unlist(&mut self, bans: &mut Bans, now: Instant) {
        let Some(u) = &mut self.unlisting else {
            return;
        };
        match bans.unlisted(u.number, BATCH) {
            Ok((n, changes)) => {
                self.changes.extend(changes);
                u.lifted += n;
                self.counters.lifted += n as u64;
                if n == BATCH {
                    return;
                }
            }
            Err(e) => {
                // Read the whole list again later: ending the rest needs one.
                self.unlisting = None;
                return self.failed(&format!("cannot end what it no longer lists: {e}"), now);
            }
        }
        let Some(u) = self.unlisting.take() else {
            return;
        };
        if u.lifted > 0 {
            info!(
                "CrowdSec no longer lists {} ban(s): lifted{}",
                u.lifted,
                if u.over_max > 0 {
                    "; the list is read again for those left out over crowdsec_max"
                } else {
                    ""
                }
            );
            self.startup |= u.over_max > 0;
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
fn admit(item: Item, engine: &Engine, now: i64, batch: &mut Batch) {
    let d: Decision = match item {
        Item::Decision(d) => d,
        Item::Skipped { list, value, why } => {
            batch.skipped += 1;
            if batch.skipped <= LOG_EACH {
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
        if !batch.startup {
            batch.deleted.push(d.net);
        }
        return;
    }
    if let Err(why) = engine.admission().check(&d.net, Door::Crowdsec) {
        batch.refused += 1;
        if batch.refused <= LOG_EACH {
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
                "CrowdSec decision to ban {}{from} refused: it {why}",
                net_text(&d.net)
            );
        }
        return;
    }
    let until = Lifetime::Until(now.saturating_add(d.seconds));
    batch.new.push(BanRequest {
        service: d.origin.into(),
        ..BanRequest::new(d.net, Origin::Crowdsec, d.scenario, now, until)
    });
}
