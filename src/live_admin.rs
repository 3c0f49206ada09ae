//! An admin's `-a`/`-d` applied by the running daemon, in its loop (the lists come through the
//! control socket in parts): the penalty table, the expiry schedule and the kernel stay in
//! step, a `-d`'d host starts from zero, and the import never waits on SQLite's busy handler
//! while the daemon holds the database. The list is parsed again here: whatever reaches the
//! socket is untrusted.

use std::collections::HashSet;
use std::fmt::Write;

use ipnet::IpNet;

use crate::addr::{self, net_text};
use crate::admission::Door;
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::bans::{Bans, Changes, Lift, Outcome};
use crate::clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::firewall::ErrorKind;
use crate::{info, warn};

/// The networks of a list, one per line; a line that is none is answered as an error.
fn parse(body: &str, out: &mut String) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match addr::parse_net(line) {
            Ok(n) => nets.push(n.trunc()),
            Err(e) => {
                let _ = writeln!(out, "err {} {e}", printable(line));
            }
        }
    }
    nets
}

fn printable(s: &str) -> String {
    crate::log::printable(&s.as_bytes()[..s.len().min(100)])
}

/// `add`: answers `ok NET banned|already|permanent` or `err NET why`, one line each; and
/// what changed, for the daemon to tell (the log, the hooks).
pub fn add(bans: &mut Bans, engine: &Engine, cfg: &Config, body: &str) -> (String, Changes) {
    let mut out = String::new();
    let mut wanted = Vec::new();
    let now = clock::now_epoch();
    for net in parse(body, &mut out) {
        // The command checked the admin's own address before it sent the list.
        let door = Door::Manual {
            admin: None,
            force: true,
        };
        match engine.admission().check(&net, door) {
            Ok(()) => wanted.push(BanRequest::new(
                net,
                Origin::Manual,
                "manual",
                now,
                Lifetime::Permanent,
            )),
            Err(why) => {
                let _ = writeln!(out, "err {} {why}", net_text(&net));
            }
        }
    }
    let nets: Vec<IpNet> = wanted.iter().map(|b| b.net).collect();
    let mut changes = Changes::default();
    match bans.add(wanted, false, &mut |_| {}) {
        Ok((mut outcomes, added)) => {
            changes = added;
            // The chain, sets or table were gone: the audit makes them again with every
            // stored ban (these ones are stored), as `ampere -a` alone would have made them
            // before adding.
            let gone = |o: &Outcome| matches!(o, Outcome::Firewall(e) if e.kind == ErrorKind::MissingChain);
            if outcomes.iter().any(gone) {
                bans.audit(cfg, now);
                for (net, o) in nets.iter().zip(outcomes.iter_mut()) {
                    if gone(o) && bans.firewall().holds(net).unwrap_or(false) {
                        *o = Outcome::Done;
                    }
                }
            }
            for (net, o) in nets.iter().zip(outcomes) {
                let text = net_text(net);
                let _ = match o {
                    Outcome::Done => writeln!(out, "ok {text} banned"),
                    Outcome::Unchanged => writeln!(out, "ok {text} already"),
                    Outcome::MadePermanent => {
                        info!("{text}: temporary ban made permanent (manual, ampere -a)");
                        writeln!(out, "ok {text} permanent")
                    }
                    Outcome::Firewall(e) => {
                        writeln!(out, "err {text} recorded, but the firewall failed: {e}")
                    }
                };
            }
        }
        Err(e) => {
            warn!("ampere -a through the control socket: {e}");
            let _ = writeln!(out, "error: {e}");
        }
    }
    (out, changes)
}

/// `del`: each network's own ban and every ban inside it are lifted, and the penalties
/// inside it forgotten. Answers `ok NET unbanned N` or `err NET why`; and what changed.
pub fn del(bans: &mut Bans, engine: &mut Engine, body: &str) -> (String, Changes) {
    let mut out = String::new();
    let asked = parse(body, &mut out);
    engine.forget(&asked);
    // Each asked network with the active bans it takes in (itself included), each lifted once.
    let per_asked = match bans.active_within(&asked) {
        Ok(p) => p,
        Err(e) => return (format!("{out}error: {e}\n"), Changes::default()),
    };
    let mut seen = HashSet::new();
    let lift: Vec<IpNet> = per_asked
        .iter()
        .flatten()
        .filter(|n| seen.insert(**n))
        .copied()
        .collect();
    let mut changes = Changes::default();
    match bans.remove(&lift, Lift::Manual, false, &mut |_| {}) {
        Ok((outcomes, lifted)) => {
            changes = lifted;
            let failed: Vec<(IpNet, String)> = lift
                .iter()
                .zip(outcomes)
                .filter_map(|(n, o)| match o {
                    Outcome::Firewall(e) => Some((*n, e.to_string())),
                    _ => None,
                })
                .collect();
            for (net, inside) in asked.iter().zip(&per_asked) {
                let text = net_text(net);
                let _ = match failed.iter().find(|(n, _)| net.contains(n)) {
                    Some((n, e)) => writeln!(
                        out,
                        "err {text} removed from the database, but the firewall failed for {}: {e}",
                        net_text(n)
                    ),
                    None if inside.is_empty() => writeln!(out, "err {text} is not banned"),
                    None => {
                        info!("unbanned {text} and {} ban(s) inside it (manual, ampere -d); its penalties forgotten", inside.len());
                        writeln!(out, "ok {text} unbanned {}", inside.len())
                    }
                };
            }
        }
        Err(e) => {
            warn!("ampere -d through the control socket: {e}");
            let _ = writeln!(out, "error: {e}");
        }
    }
    (out, changes)
}
