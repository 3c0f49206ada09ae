//! An admin's `-a`/`-d` applied by the running daemon, in its loop (the lists come through the
//! control socket in parts): the penalty table, the expiry schedule and the kernel stay in
//! step, a `-d`'d host starts from zero, and the import never waits on SQLite's busy handler
//! while the daemon holds the database. The list was parsed again on its way in
//! (`control::proto`): whatever reaches the socket is untrusted.

use ipnet::IpNet;
use std::collections::HashSet;

use crate::addr::net_text;
use crate::admission::Door;
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::bans::{Bans, Changes, Lift, Outcome};
use crate::clock;
use crate::config::Config;
use crate::control::proto::{Answer, Done, Item, List};
use crate::engine::Engine;
use crate::firewall::ErrorKind;
use crate::{info, warn};

/// `add`: an item per network (banned, already, made permanent, or why not); and what
/// changed, for the daemon to tell (the log, the hooks).
pub fn add(bans: &mut Bans, engine: &Engine, cfg: &Config, list: List) -> (Answer, Changes) {
    let mut items = list.bad;
    let mut error = None;
    let mut wanted = Vec::new();
    let now = clock::now_epoch();
    for net in list.nets {
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
            Err(why) => items.push(Item::err(&net, why)),
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
                items.push(match o {
                    Outcome::Done => Item::ok(net, Done::Banned),
                    Outcome::Unchanged => Item::ok(net, Done::Already),
                    Outcome::MadePermanent => {
                        let text = net_text(net);
                        info!("{text}: temporary ban made permanent (manual, ampere -a)");
                        Item::ok(net, Done::Permanent)
                    }
                    Outcome::Firewall(e) => {
                        Item::err(net, format!("recorded, but the firewall failed: {e}"))
                    }
                });
            }
        }
        Err(e) => {
            warn!("ampere -a through the control socket: {e}");
            error = Some(e.to_string());
        }
    }
    (Answer::Items { items, error }, changes)
}

/// `del`: each network's own ban and every ban inside it are lifted, and the penalties
/// inside it forgotten. An item per network (how many were lifted, or why not); and what
/// changed.
pub fn del(bans: &mut Bans, engine: &mut Engine, list: List) -> (Answer, Changes) {
    let (mut items, asked) = (list.bad, list.nets);
    let mut error = None;
    engine.forget(&asked);
    // Each asked network with the active bans it takes in (itself included), each lifted once.
    let per_asked = match bans.active_within(&asked) {
        Ok(p) => p,
        Err(e) => {
            let error = Some(e.to_string());
            return (Answer::Items { items, error }, Changes::default());
        }
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
                items.push(match failed.iter().find(|(n, _)| net.contains(n)) {
                    Some((n, e)) => Item::err(
                        net,
                        format!(
                            "removed from the database, but the firewall failed for {}: {e}",
                            net_text(n)
                        ),
                    ),
                    None if inside.is_empty() => Item::err(net, "is not banned"),
                    None => {
                        info!("unbanned {text} and {} ban(s) inside it (manual, ampere -d); its penalties forgotten", inside.len());
                        Item::ok(net, Done::Unbanned(inside.len()))
                    }
                });
            }
        }
        Err(e) => {
            warn!("ampere -d through the control socket: {e}");
            error = Some(e.to_string());
        }
    }
    (Answer::Items { items, error }, changes)
}
