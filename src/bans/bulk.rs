//! The admin's `-a` and `-d`: lists of any length, in batches.

use ipnet::IpNet;

use super::lock::Held;
use super::{Ban, Bans, Changes, Lift, Outcome, DB_CHUNK, FW_CHUNK};
use crate::ban::BanRequest;
use crate::clock;
use crate::debug;
use crate::error::Error;
use crate::firewall::{Entry, ErrorKind as FwKind, FwError, Started};
use crate::store::StoreError;

/// Another process holds the kernel lock and the caller would not wait for it.
fn busy() -> Error {
    let why = "another ampere -a or -d is changing the bans; try again";
    Error::Firewall(FwError::new(FwKind::Busy, why))
}

/// A part's new bans at least this many: its tool runs while the next part is stored. A
/// started tool costs a file and a spawn; a few bans are one quick command.
pub(super) const STARTED_FROM: usize = 1_000;

/// Parts stored and put in the kernel under one hold of the kernel lock, one part's tool
/// running beside the next part's storing; then the lock is let go (the daemon stores what
/// it banned meanwhile) with nothing under way.
const PARTS_PER_HOLD: usize = 4;

/// A part of the list, stored: each request's outcome so far (the new bans' still None),
/// and the new bans with where they sit in it.
struct Part {
    outcome: Vec<Option<Outcome>>,
    todo: Vec<usize>,
    new: Vec<Ban>,
}

/// A part stored, its new bans on their way to the kernel: started (its tool runs while the
/// next part is stored) or not (`finish_part` runs `ban_many`).
struct Running {
    started: Option<Started>,
    /// The lock it was stored under: held until its tool has finished.
    held: Option<Held>,
    part: Part,
}

impl Bans {
    /// An admin's `-a`: in parts of `FW_CHUNK`, each under the kernel lock (the daemon bans
    /// on meanwhile, and stores its bans between holds of it): recorded (permanent) first,
    /// in transactions of `DB_CHUNK` rows, then put in the firewall (one command per
    /// family). Where the backend can start its tool on a part and be waited for later
    /// (`Backend::ban_many_started`), the tool adds one part while the next is stored: a
    /// million took ipset 9.5 s and nft 5.1 s one after the other, of which 2.8 s were
    /// SQLite's, and take 8.3 and 3.7 s so. An active temporary ban becomes permanent, in the database and (without
    /// its timeout) in the kernel; an active ban the kernel lost (a killed `-a`) is put
    /// back. `progress` hears how many are done after each part. `wait` for the kernel lock
    /// (an admin's process) or fail at once if another process holds it (the daemon's loop).
    pub fn add(
        &mut self,
        requests: Vec<BanRequest>,
        wait: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Outcome>, Changes), Error> {
        let now = clock::now_epoch();
        let mut out = Vec::with_capacity(requests.len());
        let mut changes = Changes::default();
        let mut running: Option<Running> = None;
        let parts = requests.len().div_ceil(FW_CHUNK);
        for (i, chunk) in requests.chunks(FW_CHUNK).enumerate() {
            let held = match running.as_mut().and_then(|r| r.held.take()) {
                Some(h) => h,
                None => self.lock_kernel(wait).ok_or_else(busy)?,
            };
            let part = match self.store_part(chunk, now) {
                Ok(p) => p,
                Err(e) => {
                    // What runs is waited for: its bans are stored, and the kernel has them.
                    if let Some(r) = running.take() {
                        self.finish_part(r, now, &mut out, &mut changes);
                    }
                    return Err(e);
                }
            };
            if let Some(r) = running.take() {
                self.finish_part(r, now, &mut out, &mut changes);
                progress(out.len());
            }
            // Started only where the next part's storing can run beside it: never for a
            // list of one part (the daemon's `-a` of at most 1,000 keeps its `ipset -` or
            // `nft -i`).
            let beside = (i + 1) % PARTS_PER_HOLD != 0 && i + 1 < parts;
            let entries: Vec<Entry> = part.new.iter().map(Ban::entry).collect();
            let part = Running {
                started: (beside && entries.len() >= STARTED_FROM)
                    .then(|| self.fw.ban_many_started(&entries, now))
                    .flatten(),
                held: Some(held),
                part,
            };
            if part.started.is_some() {
                running = Some(part);
                continue;
            }
            self.finish_part(part, now, &mut out, &mut changes);
            progress(out.len());
        }
        if let Some(r) = running.take() {
            self.finish_part(r, now, &mut out, &mut changes);
            progress(out.len());
        }
        Ok((out, changes))
    }

    /// Records a part of an admin's `-a` and makes sure of the bans it held already.
    fn store_part(&mut self, chunk: &[BanRequest], now: i64) -> Result<Part, Error> {
        let mut stored: Vec<Option<Ban>> = Vec::with_capacity(chunk.len());
        for part in chunk.chunks(DB_CHUNK) {
            // An admin's ban is permanent: nothing escalates.
            stored.extend(self.store.record(part, &|_, _| None)?);
        }
        let known: Vec<IpNet> = chunk
            .iter()
            .zip(&stored)
            .filter(|(_, s)| s.is_none())
            .map(|(r, _)| r.net)
            .collect();
        let made = self.store.make_permanent(&known)?;
        let made: std::collections::HashSet<IpNet> = known
            .iter()
            .zip(made)
            .filter(|(_, m)| *m)
            .map(|(n, _)| *n)
            .collect();
        let permanent = |net: IpNet| Entry { net, expires: None };
        let mut outcome: Vec<Option<Outcome>> = chunk.iter().map(|_| None).collect();
        // Active and permanent already: the kernel should hold them (a killed `-a` may
        // have left them out).
        let unchanged: Vec<usize> = (0..chunk.len())
            .filter(|&i| stored[i].is_none() && !made.contains(&chunk[i].net))
            .collect();
        let batch: Vec<Entry> = unchanged.iter().map(|&i| permanent(chunk[i].net)).collect();
        for (&i, r) in unchanged.iter().zip(self.ensure_held(&batch, now)) {
            outcome[i] = Some(match r {
                Ok(()) => Outcome::Unchanged,
                Err(e) => Outcome::Firewall(e),
            });
        }
        for (i, r) in chunk.iter().enumerate() {
            if stored[i].is_none() && made.contains(&r.net) {
                // The kernel's entry may carry a timeout (ipset, nft): put it back without.
                let entry = permanent(r.net);
                outcome[i] = Some(
                    match self
                        .fw
                        .unban(&r.net)
                        .and_then(|()| self.fw.ban(&entry, now))
                    {
                        Ok(()) => Outcome::MadePermanent,
                        Err(e) => Outcome::Firewall(e),
                    },
                );
            }
        }
        let todo: Vec<usize> = (0..chunk.len()).filter(|&i| stored[i].is_some()).collect();
        let new: Vec<Ban> = stored.into_iter().flatten().collect();
        Ok(Part { outcome, todo, new })
    }

    /// Puts a stored part's new bans in the kernel, or waits for the tool started on them
    /// (one that failed: each again on its own, as `put_in_kernel_each` does; adding what
    /// the set holds changes nothing), and adds the part's outcomes to `out`.
    fn finish_part(
        &mut self,
        part: Running,
        now: i64,
        out: &mut Vec<Outcome>,
        changes: &mut Changes,
    ) {
        let Running {
            started,
            held,
            part:
                Part {
                    mut outcome,
                    todo,
                    new,
                },
        } = part;
        let results = match started.map(Started::finish) {
            Some(Ok(())) => {
                let all: Vec<Result<(), FwError>> = new.iter().map(|_| Ok(())).collect();
                self.counted(&new, &all, false);
                all
            }
            Some(Err(e)) => {
                debug!("{e}; ban by ban");
                self.put_in_kernel_each(&new, now, false)
            }
            None => self.put_in_kernel_each(&new, now, false),
        };
        drop(held);
        for ((&i, b), r) in todo.iter().zip(&new).zip(results) {
            outcome[i] = Some(match r {
                Ok(()) => {
                    changes.banned.push(b.clone());
                    Outcome::Done
                }
                Err(e) => Outcome::Firewall(e),
            });
        }
        out.extend(
            outcome
                .into_iter()
                .map(|o| o.expect("every ban has an outcome")),
        );
    }

    /// An admin's `-d`: forgotten in the database first, then removed from the firewall, in
    /// batches as `add`.
    pub fn remove(
        &mut self,
        nets: &[IpNet],
        why: Lift,
        wait: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Outcome>, Changes), Error> {
        let mut out = Vec::with_capacity(nets.len());
        let mut changes = Changes::default();
        for chunk in nets.chunks(FW_CHUNK) {
            let _held = self.lock_kernel(wait).ok_or_else(busy)?;
            let mut was_active = Vec::with_capacity(chunk.len());
            for part in chunk.chunks(DB_CHUNK) {
                was_active.extend(self.store.remove_many(part)?);
            }
            let gone: Vec<IpNet> = chunk
                .iter()
                .zip(&was_active)
                .filter(|(_, a)| **a)
                .map(|(n, _)| *n)
                .collect();
            let mut results = self.unapply(&gone).into_iter();
            for (net, active) in chunk.iter().zip(was_active) {
                out.push(
                    match active.then(|| results.next().expect("one result per unban")) {
                        None => Outcome::Unchanged,
                        Some(Ok(())) => {
                            self.counters.unbans += 1;
                            changes.lifted.push((*net, why));
                            Outcome::Done
                        }
                        Some(Err(e)) => Outcome::Firewall(e),
                    },
                );
            }
            progress(out.len());
        }
        Ok((out, changes))
    }

    /// For each of `nets`, the active bans it takes in: its own first, then those inside it.
    /// Addresses are looked up by key; for a network the active bans are read once, row by
    /// row: the daemon answering `-d 10.0.0.0/8` with a million in place held them all in
    /// memory before (its peak RSS grew with the bans). The read itself still grows with
    /// them; only a network asked pays it.
    pub fn active_within(&self, nets: &[IpNet]) -> Result<Vec<Vec<IpNet>>, StoreError> {
        let mut out = nets
            .iter()
            .map(|net| {
                Ok(if self.store.is_banned(net)? {
                    vec![*net]
                } else {
                    Vec::new()
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let wide: Vec<usize> = (0..nets.len())
            .filter(|&i| !crate::addr::is_host(&nets[i]))
            .collect();
        if !wide.is_empty() {
            self.store.for_each_active_entry(|e| {
                for &i in &wide {
                    if e.net != nets[i] && nets[i].contains(&e.net) {
                        out[i].push(e.net);
                    }
                }
            })?;
        }
        Ok(out)
    }

    /// Takes `nets` out of the firewall in one command per family where the tool allows,
    /// each on its own when that fails.
    pub(super) fn unapply(&self, nets: &[IpNet]) -> Vec<Result<(), FwError>> {
        if nets.len() > 1 && self.fw.unban_many(nets).is_ok() {
            return nets.iter().map(|_| Ok(())).collect();
        }
        nets.iter().map(|n| self.fw.unban(n)).collect()
    }
}
