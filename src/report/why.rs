//! `ampere why ADDR`: everything Ampere knows of an address, from the database, the
//! engine (when the daemon is asked) and the kernel: its bans and those of every network
//! containing it, its penalty, whether it is trusted (and by which line), whether it logged
//! in before, and whether the kernel drops it.

use std::fmt::Write;

use ipnet::IpNet;

use super::{ago, ban_line};
use crate::addr::{self, net_text};
use crate::clock::{self, format_time};
use crate::config::Config;
use crate::control::proto::Answer;
use crate::engine::Engine;
use crate::firewall::Backend;
use crate::log::printable;
use crate::own::OwnNets;
use crate::resolver::{self, Named};
use crate::store::Store;

/// `addr` and every network that contains it, narrowest first.
fn containing(net: IpNet) -> Vec<IpNet> {
    (0..=net.prefix_len())
        .rev()
        .filter_map(|len| IpNet::new(net.network(), len).ok().map(|n| n.trunc()))
        .collect()
}

/// The trust entries that cover `addr`, with their config lines; a name with what it
/// resolves to now.
fn trusted_by(cfg: &Config, names: &[Named], net: &IpNet) -> Vec<String> {
    let at = |line: usize| match line {
        0 => String::new(),
        l => format!(" ({}:{l})", cfg.source),
    };
    let nets = cfg
        .trust
        .iter()
        .enumerate()
        .filter(|(_, t)| t.contains(net))
        .map(|(i, t)| format!("`trust = {t}`{}", at(*cfg.trust_lines.get(i).unwrap_or(&0))));
    let named = names
        .iter()
        .filter(|n| n.addrs.iter().any(|a| IpNet::from(*a).contains(net)))
        .map(|n| {
            format!(
                "`trust = {}`{}, which resolves to {}",
                n.name,
                at(n.line),
                resolver::joined(&n.addrs)
            )
        });
    nets.chain(named).collect()
}

/// `why ADDR`: the bans of ADDR and of every network containing it, its penalty (when the
/// daemon is asked), whether it is trusted and by which line, whether the kernel drops it.
pub fn why(
    cfg: &Config,
    store: &Store,
    fw: &dyn Backend,
    engine: Option<(&Engine, u64)>,
    names: &[Named],
    own: &OwnNets,
    text: &str,
) -> Answer {
    let net = match addr::parse_net(text.trim()) {
        Ok(n) => n,
        Err(e) => return Answer::Error(e.0),
    };
    let now = clock::now_epoch();
    let mut o = format!("{}:\n", net_text(&net));
    let records = match store.records_of(&containing(net)) {
        Ok(r) => r,
        Err(e) => return Answer::Error(format!("{}: {e}", net_text(&net))),
    };
    if records.is_empty() {
        let _ = writeln!(o, "  bans: none, now or before");
    }
    for r in &records {
        let _ = writeln!(
            o,
            "  {} {}",
            if r.active { "BANNED:" } else { "was banned:" },
            ban_line(r, now)
        );
    }
    let single = addr::is_host(&net).then(|| net.network());
    match (engine, single) {
        (Some((e, sec)), Some(ip)) => {
            let (scored, p) = e.penalty_of(ip, sec);
            let _ = match p {
                Some(p) => writeln!(
                    o,
                    "  penalty now: {p} of {} (scored as {})",
                    e.limit(),
                    net_text(&scored)
                ),
                None => writeln!(o, "  penalty now: none (scored as {})", net_text(&scored)),
            };
            if e.is_protected(ip) {
                let _ = writeln!(
                    o,
                    "  protected: never banned (trust, loopback, the AMI host or the PBX's own)"
                );
            }
            notes_lines(&mut o, e.notes(), ip, now);
        }
        (None, _) => {
            let _ = writeln!(o, "  penalty now: unknown (the daemon is not running)");
        }
        _ => {}
    }
    if let Some(ip) = single {
        own_lines(&mut o, own, ip, now);
        let banned = records.iter().any(|r| r.active);
        known_lines(&mut o, store, ip, now, banned);
    }
    let by = trusted_by(cfg, names, &net);
    let _ = if by.is_empty() {
        writeln!(o, "  trusted: no")
    } else {
        writeln!(o, "  trusted: yes, by {}", by.join(", "))
    };
    let active: Vec<&IpNet> = records
        .iter()
        .filter(|r| r.active)
        .map(|r| &r.ban.net)
        .collect();
    let mut kernel = Vec::new();
    // The rule path, not only the set: what of Ampere's rules differs from what it wrote,
    // and what of the admin's keeps traffic from reaching them.
    let path: Vec<String> = if active.is_empty() {
        Vec::new()
    } else {
        let mut p = fw
            .faults()
            .unwrap_or_else(|e| vec![format!("cannot read the rules: {e}")]);
        if !p.is_empty() {
            p.push("the audit makes Ampere's rules again".to_string());
        }
        p.extend(fw.path_faults().unwrap_or_default());
        p
    };
    for n in active {
        match fw.holds(n) {
            Ok(true) if path.is_empty() => kernel.push(format!("drops it ({})", net_text(n))),
            Ok(true) => kernel.push(format!(
                "holds the ban of {}, but the rules do NOT drop it for sure: {}",
                net_text(n),
                path.join("; ")
            )),
            Ok(false) => kernel.push(format!(
                "does NOT hold the ban of {} (the audit puts it back)",
                net_text(n)
            )),
            Err(e) => kernel.push(format!("cannot tell for {}: {e}", net_text(n))),
        }
    }
    if kernel.is_empty() {
        kernel.push("no active ban to hold".to_string());
    }
    let _ = writeln!(o, "  kernel: {}", kernel.join("; "));
    Answer::Text(o)
}

/// Whether `ip` is the PBX's own address, or on one of its links, and since when.
fn own_lines(o: &mut String, own: &OwnNets, ip: std::net::IpAddr, now: i64) {
    let (addr, link) = own.of(ip);
    if let Some(a) = addr {
        let _ = writeln!(
            o,
            "  the PBX's own: its address on {} (seen since {}, {}): never banned",
            a.interface,
            format_time(a.since),
            ago(a.since, now)
        );
    } else if let Some(l) = link {
        let _ = writeln!(
            o,
            "  on the PBX's own link {} ({}, seen since {}): banned only address by address, never as a network",
            net_text(&l.net),
            l.interface,
            format_time(l.since)
        );
    }
}

/// What the daemon noted of `ip` for the admin: accounts failing where they logged in
/// before, and the registrar's latest refusal after a success.
fn notes_lines(o: &mut String, notes: &crate::engine::Notes, ip: std::net::IpAddr, now: i64) {
    for s in notes.stale().into_iter().filter(|s| s.addr == ip) {
        let _ = writeln!(
            o,
            "  stale password: account `{}` failed {} time(s) from here, where it logged in before, since {} (latest {}), {} ban(s): a device with an old password? Counted apart, never banned for good",
            s.account,
            s.failures,
            format_time(s.first),
            ago(s.last, now),
            s.bans
        );
    }
    if let Some(r) = notes.latest_refusal.as_ref().filter(|r| r.addr == ip) {
        let _ = writeln!(
            o,
            "  registrar: refused account `{}` right after its success ({}), {}: not counted",
            r.account,
            r.acl,
            ago(r.at, now)
        );
    }
}

/// What the database remembers of `ip` as a legitimate host: each account that logged in
/// (or is registered) from it, how, and when last; and, when it is banned, how to lift it.
fn known_lines(o: &mut String, store: &Store, ip: std::net::IpAddr, now: i64, banned: bool) {
    let rows = match store.known_of(ip) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(o, "  known: cannot tell: {e}");
            return;
        }
    };
    let rows_empty = rows.is_empty();
    if rows_empty {
        let _ = writeln!(o, "  known: no account ever logged in from here");
    }
    for (account, source, first, last) in rows {
        let how = match crate::facts::Source::parse(&source) {
            Some(crate::facts::Source::Login) => "logged in as",
            Some(crate::facts::Source::Trunk) => "a trunk,",
            _ => "registered as",
        };
        let _ = writeln!(
            o,
            "  known: {how} `{}` ({source}), first {}, last {} ({})",
            printable(account.as_bytes()),
            format_time(first),
            format_time(last),
            ago(last, now)
        );
    }
    if banned && !rows_empty {
        let _ = writeln!(
            o,
            "  it logged in before and is banned now: if it is yours, `ampere -d {ip}` lifts the ban (`trust = {ip}` keeps it from the next)"
        );
    }
}
