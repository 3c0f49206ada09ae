//! Trust by name (`trust = office.example.net`): the addresses of each name, looked up at
//! start and every `trust_refresh`. getaddrinfo(3) blocks for as long as DNS takes (musl:
//! 5 s per try, two tries), so the daemon never calls it: it runs `ampere --resolve NAME...`
//! (itself, through /proc/self/exe) and reads the child's answers through a pipe that is one
//! more fd in the poll loop. The child is killed after `LIMIT`. A name that fails keeps the
//! addresses it had: a DNS outage must not expose the admin's office to a ban.

use std::io::{self, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::addr::canonical;
use crate::config::{Config, TrustName};
use crate::sys::{self, PollFd};
use crate::{error, info, warn};

pub mod child;
pub use child::LookupChild;

/// The longest a lookup of all names may take before its child is killed.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Bounds on what a child may answer: addresses per name, and bytes in all.
const MAX_ADDRS: usize = 32;
const MAX_OUTPUT: usize = 64 * 1024;

/// A trusted name and what it resolved to last.
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    pub name: String,
    /// Its line in the config, for `why`.
    pub line: usize,
    /// The last good answer, kept while later lookups fail.
    pub addrs: Vec<IpAddr>,
    /// The last lookup failed (logged once until it succeeds again).
    pub failing: bool,
}

/// A blocking lookup of the A and AAAA addresses of `name`, as the C library does it (hosts
/// file, then DNS).
pub fn lookup(name: &str) -> io::Result<Vec<IpAddr>> {
    let found = (name, 0).to_socket_addrs()?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for ip in found.map(|a| canonical(a.ip())) {
        if !addrs.contains(&ip) && addrs.len() < MAX_ADDRS {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
    }
    Ok(addrs)
}

/// Addresses as the log, `-t`, `status` and `why` show them: separated by spaces.
pub fn joined(addrs: &[IpAddr]) -> String {
    let texts: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    texts.join(" ")
}

/// `ampere --resolve NAME...`, the child: one line per name as soon as it is known
/// (`NAME ADDR...` or `NAME ! why`), so that a name stuck in DNS does not hold back the
/// answers before it.
pub fn child(names: &[String]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for name in names {
        match lookup(name) {
            Ok(addrs) => writeln!(out, "{name} {}", joined(&addrs))?,
            Err(e) => writeln!(out, "{name} ! {}", e.to_string().replace('\n', " "))?,
        }
        out.flush()?;
    }
    Ok(())
}

/// For the commands that run once (`-t`, `-a`, `why` without a daemon): every name looked
/// up now, in turn, blocking.
pub fn lookup_all(names: &[TrustName]) -> Vec<(Named, Option<io::Error>)> {
    names
        .iter()
        .map(|n| {
            let (addrs, err) = match lookup(&n.name) {
                Ok(a) => (a, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            let named = Named {
                name: n.name.clone(),
                line: n.line,
                failing: err.is_some(),
                addrs,
            };
            (named, err)
        })
        .collect()
}

/// The host networks of every address the names resolved to.
pub fn networks(names: &[Named]) -> Vec<IpNet> {
    names
        .iter()
        .flat_map(|n| n.addrs.iter().map(|a| IpNet::from(*a)))
        .collect()
}

/// A lookup under way and which names it answered.
struct Lookup {
    child: LookupChild,
    answered: Vec<bool>,
}

pub struct Resolver {
    names: Vec<Named>,
    every: Duration,
    next: Option<Instant>,
    running: Option<Lookup>,
}

impl Resolver {
    pub fn new(cfg: &Config) -> Resolver {
        let mut r = Resolver {
            names: Vec::new(),
            every: Duration::from_secs(300),
            next: None,
            running: None,
        };
        r.reconfigure(cfg);
        r
    }

    /// Takes the names of a (re)loaded config. A name kept keeps its addresses; when a name
    /// is new, all are looked up now.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.every = Duration::from_secs(cfg.trust_refresh.max(1));
        let mut fresh = false;
        let old = std::mem::take(&mut self.names);
        for t in &cfg.trust_names {
            if self.names.iter().any(|n| n.name == t.name) {
                continue;
            }
            match old.iter().find(|n| n.name == t.name) {
                Some(n) => self.names.push(Named {
                    line: t.line,
                    ..n.clone()
                }),
                None => {
                    fresh = true;
                    self.names.push(Named {
                        name: t.name.clone(),
                        line: t.line,
                        addrs: Vec::new(),
                        failing: false,
                    });
                }
            }
        }
        if fresh || self.names.len() != old.len() {
            self.stop();
        }
        self.next = match (self.names.is_empty(), fresh, self.next) {
            (true, _, _) => None,
            (false, true, _) | (false, false, None) => Some(Instant::now()),
            (false, false, Some(t)) => Some(t.min(Instant::now() + self.every)),
        };
    }

    pub fn names(&self) -> &[Named] {
        &self.names
    }

    pub fn poll_fd(&self, fds: &mut Vec<PollFd>) {
        if let Some(l) = &self.running {
            fds.push(PollFd {
                fd: l.child.fd(),
                events: sys::POLLIN,
                revents: 0,
            });
        }
    }

    pub fn next_timer(&self) -> Option<Instant> {
        match &self.running {
            Some(l) => Some(l.child.deadline),
            None => self.next,
        }
    }

    /// Starts a lookup when one is due and gives up on one past its time (its unanswered
    /// names keep what they had: nothing changes).
    pub fn tick(&mut self, now: Instant) {
        match &self.running {
            Some(l) if now >= l.child.deadline => {
                self.gave_up(&format!("within {}s (DNS down?)", LIMIT.as_secs()));
                self.stop();
            }
            Some(_) => {}
            None if self.next.is_some_and(|t| now >= t) => self.start(now),
            None => {}
        }
    }

    fn start(&mut self, now: Instant) {
        self.next = Some(now + self.every);
        let names = self.names.iter().map(|n| n.name.as_str());
        match LookupChild::spawn(names, now + LIMIT) {
            Ok(child) => {
                self.running = Some(Lookup {
                    child,
                    answered: vec![false; self.names.len()],
                })
            }
            Err(e) => error!("trust: cannot start a lookup of the trusted names: {e}"),
        }
    }

    /// Ends the lookup under way, if any; its child is killed and reaped.
    fn stop(&mut self) {
        self.running = None;
    }

    /// The names the running lookup did not answer count as failed; logged for those that
    /// did not fail before.
    fn gave_up(&mut self, why: &str) {
        let Some(l) = &self.running else {
            return;
        };
        let mut newly = Vec::new();
        for (n, _) in self.names.iter_mut().zip(&l.answered).filter(|(_, a)| !**a) {
            if !std::mem::replace(&mut n.failing, true) {
                newly.push(n.name.clone());
            }
        }
        if !newly.is_empty() {
            warn!(
                "trust: no answer for {} {why}; keeping what they had",
                newly.join(", ")
            );
        }
    }

    /// The child's pipe is readable: takes what it said. Returns whether the trusted
    /// addresses changed.
    pub fn ready(&mut self) -> bool {
        let Some(l) = &mut self.running else {
            return false;
        };
        let (lines, eof) = match l.child.read() {
            Ok(read) => read,
            Err(e) => {
                error!("trust: {e}; ignored");
                self.stop();
                return false;
            }
        };
        let mut changed = false;
        for line in &lines {
            changed |= self.answer(line);
        }
        if eof {
            self.gave_up("(the lookup ended early)");
            self.stop();
        }
        changed
    }

    /// One line of the child: `NAME ADDR...` or `NAME ! why`.
    fn answer(&mut self, line: &str) -> bool {
        let Some(l) = &mut self.running else {
            return false;
        };
        let (name, parsed) = child::answer(line);
        let Some(i) = self.names.iter().position(|n| n.name == name) else {
            return false;
        };
        if std::mem::replace(&mut l.answered[i], true) {
            return false;
        }
        let n = &mut self.names[i];
        match parsed {
            Err(why) => {
                if !n.failing {
                    n.failing = true;
                    if n.addrs.is_empty() {
                        warn!(
                            "trust {} does not resolve ({why}): it protects nothing until it does",
                            n.name
                        );
                    } else {
                        warn!(
                            "trust {} does not resolve ({why}): keeping {}",
                            n.name,
                            joined(&n.addrs)
                        );
                    }
                }
                false
            }
            Ok(addrs) if addrs == n.addrs => {
                if std::mem::replace(&mut n.failing, false) {
                    info!("trust {} resolves again: {}", n.name, joined(&addrs));
                }
                false
            }
            Ok(addrs) => {
                n.failing = false;
                if n.addrs.is_empty() {
                    info!("trust {}: {}", n.name, joined(&addrs));
                } else {
                    info!(
                        "trust {}: {} -> {}",
                        n.name,
                        joined(&n.addrs),
                        joined(&addrs)
                    );
                }
                n.addrs = addrs;
                true
            }
        }
    }

    /// At start: waits for the first lookup, at most `LIMIT`.
    pub fn wait(&mut self) {
        self.tick(Instant::now());
        loop {
            let mut fds = Vec::with_capacity(1);
            self.poll_fd(&mut fds);
            if fds.is_empty() {
                return;
            }
            let left = self.next_timer().map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            });
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            match sys::poll(&mut fds, ms) {
                Ok(0) => self.tick(Instant::now()),
                Ok(_) => {
                    self.ready();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error!("trust: {e}");
                    self.stop();
                }
            }
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}
