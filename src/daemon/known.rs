//! The daemon's side of the memory of known hosts (`known.rs`): loaded from the database
//! before the first AMI login, what the engine learns written after each read (in one
//! transaction, a host's row at most once per `known::WRITE_EVERY`), and rows not seen for
//! `known_forget` forgotten once an hour, in memory and on disk; and then expired bans
//! beyond `ban_forget` and `db_max_inactive` (`store/prune.rs`).

use std::time::Duration;

use crate::bans::Bans;
use crate::config::Config;
use crate::judge::Judge;
use crate::{error, info};

/// How often rows not seen for `known_forget` are looked for.
pub const FORGET_EVERY: Duration = Duration::from_secs(3600);

/// At start: forgets what is too old, then loads the rest into the engine. `now` is the
/// wall clock.
pub fn load(judge: &mut Judge, bans: &mut Bans, cfg: &Config, now: i64) {
    let since = now.saturating_sub(cfg.known_forget as i64);
    bans.forget_known(since);
    match bans.store().known_since(since, cfg.known_max) {
        Ok(rows) => {
            judge.engine.load_known(&rows);
            if !rows.is_empty() {
                info!(
                    "{} known host(s) and account(s) loaded: their registrations and keepalives are recognised from the first event",
                    rows.len()
                );
            }
        }
        Err(e) => error!("cannot read the known hosts: {e}"),
    }
}

/// After a read: what the engine learned goes to the database.
pub fn store(judge: &mut Judge, bans: &mut Bans, cfg: &Config) {
    let rows = judge.engine.take_learned();
    if !rows.is_empty() && !bans.record_known(&rows, cfg.known_max) {
        judge.engine.not_stored(&rows);
    }
}

/// Once an hour: rows not seen for `known_forget` go, from memory and from disk. `now` is
/// the wall clock, `sec` the engine's. Returns when to come back.
pub fn forget(judge: &mut Judge, bans: &mut Bans, cfg: &Config, now: i64, sec: u64) -> Duration {
    let before = now.saturating_sub(cfg.known_forget as i64);
    let hosts = judge.engine.forget_known(before, sec);
    let rows = bans.forget_known(before);
    if hosts > 0 || rows > 0 {
        info!(
            "forgot {hosts} known host(s) ({rows} stored row(s)) not seen for {}",
            crate::clock::span(cfg.known_forget)
        );
    }
    let pruned = bans.prune(
        cfg.db_max_inactive,
        now.saturating_sub(cfg.ban_forget as i64),
    );
    if pruned.forgotten > 0 {
        info!(
            "forgot {} expired ban(s): no ban for {}, or the oldest beyond db_max_inactive {}",
            pruned.forgotten,
            crate::clock::span(cfg.ban_forget),
            cfg.db_max_inactive
        );
    }
    // A backlog goes a step a second: each step is one short transaction.
    if pruned.more {
        PRUNE_AGAIN
    } else {
        FORGET_EVERY
    }
}

/// The next step of a prune that left more to forget.
const PRUNE_AGAIN: Duration = Duration::from_secs(1);
