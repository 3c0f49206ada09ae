//! The admin commands: `-a` and `-d` (addresses from stdin, applied to the database and the
//! firewall at once, through `bans` as the daemon does) and `-l`.

use std::io::BufRead;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{net_text, parse_net};
use crate::admission::{Admission, Door};
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::bans::{Bans, Lift, Outcome};
use crate::clock::{self, format_time};
use crate::config::{self, Config};
use crate::control::proto::{Answer, Done, Item, List, Request};
use crate::error::Error;
use crate::firewall::Backend;
use crate::log::printable;
use crate::store::{Store, StoreError};

/// One input line that is not an address, with its 1-based number.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub msg: String,
}

/// Longest input line read whole; a longer one is an error, never held in memory.
const MAX_LINE: usize = 4096;

/// The next line of `input` without its newline (`buf` receives it): None at the end, and
/// Some(false) for a line longer than `MAX_LINE`, which is skipped to its newline.
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut fits) = (false, true);
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if fits && buf.len() + part.len() <= MAX_LINE {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            return Ok(Some(fits));
        }
    }
}

/// Reads `addr` / `addr/len` lines; blank lines and `#`/`;` comments (whole-line, or trailing
/// after white space as in downloaded blocklists) are skipped. Networks are reduced to their
/// base address. Every line is bounded: a longer one is reported, not read.
pub fn read_addresses(mut input: impl BufRead) -> Vec<Result<(usize, IpNet), BadLine>> {
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let mut line = 0;
    loop {
        line += 1;
        match next_line(&mut input, &mut raw) {
            Ok(None) => break,
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                out.push(Err(BadLine {
                    line,
                    msg: format!("line longer than {MAX_LINE} bytes: not an address"),
                }));
                continue;
            }
            Err(e) => {
                out.push(Err(BadLine {
                    line,
                    msg: format!("read error: {e}"),
                }));
                break;
            }
        }
        let Ok(text) = std::str::from_utf8(&raw) else {
            out.push(Err(BadLine {
                line,
                msg: format!("not an address or network: `{}`", printable(&raw)),
            }));
            continue;
        };
        let text = config::strip_comment(text).trim();
        if text.is_empty() {
            continue;
        }
        out.push(match parse_net(text) {
            Ok(net) => Ok((line, net)),
            Err(_) => Err(BadLine {
                line,
                msg: format!(
                    "not an address or network: `{}`",
                    printable(text.as_bytes())
                ),
            }),
        });
    }
    out
}

/// A list longer than this is logged in one line, not a line per ban: an import of a
/// million wrote a million lines to the log.
const LOG_EACH: usize = 1_000;

/// The address the admin is logged in from, so that `-a` does not cut the admin's own
/// session without `--force`.
fn ssh_client() -> Option<IpAddr> {
    let v = std::env::var("SSH_CLIENT").ok()?;
    v.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(crate::addr::canonical)
}

fn report(bad: &BadLine) {
    eprintln!("stdin:{}: {}", bad.line, bad.msg);
}

/// `-a`: returns Ok(true) when every line was applied.
pub fn add(
    cfg: &Config,
    fw: Box<dyn Backend>,
    input: impl BufRead,
    force: bool,
) -> Result<bool, Error> {
    // The lookups happen here, in the command, never in the admission check.
    let mut ami = Admission::ami_literal(cfg);
    if ami.is_empty() {
        use std::net::ToSocketAddrs;
        ami.extend(
            (cfg.host.as_str(), 0)
                .to_socket_addrs()
                .into_iter()
                .flatten()
                .map(|a| a.ip()),
        );
    }
    let mut admission = Admission::new(cfg, &ami);
    let mut own = crate::own::OwnNets::default();
    match own.read(clock::now_epoch()) {
        Ok(_) => admission.set_own(&own.addr_nets(), &own.link_nets()),
        Err(e) => eprintln!("ampere: warning: cannot read the interfaces' addresses ({e}): the PBX's own addresses are not protected from this list"),
    }
    let named = crate::resolver::lookup_all(&cfg.trust_names);
    for (n, err) in &named {
        if let Some(e) = err {
            eprintln!("ampere: warning: trust {} does not resolve ({e}): its address is not protected from this list", n.name);
        }
    }
    let named: Vec<_> = named.into_iter().map(|(n, _)| n).collect();
    admission.set_named(&crate::resolver::networks(&named));
    let door = Door::Manual {
        admin: ssh_client(),
        force,
    };
    let mut ok = true;
    let mut nets = Vec::new();
    for entry in read_addresses(input) {
        let (line, net) = match entry {
            Ok(v) => v,
            Err(bad) => {
                report(&bad);
                ok = false;
                continue;
            }
        };
        match admission.check(&net, door) {
            Ok(()) => nets.push(net),
            Err(why) => {
                report(&BadLine {
                    line,
                    msg: format!("{net} {why}"),
                });
                ok = false;
            }
        }
    }
    if nets.is_empty() {
        return Ok(ok);
    }
    if let Some(items) = through_daemon(cfg, &nets, Request::Add)? {
        let (mut added, mut already) = (0, 0);
        for item in items {
            match item.result {
                Ok(Done::Banned) => added += 1,
                Ok(_) => already += 1,
                Err(why) => {
                    eprintln!("{} {why}", item.net);
                    ok = false;
                }
            }
        }
        eprintln!("{added} banned, {already} already banned (by the running daemon)");
        return Ok(ok);
    }
    fw.prepare()?;
    let mut bans = Bans::open(cfg, fw)?;
    let now = clock::now_epoch();
    // An admin's bans are permanent.
    let wanted = nets
        .iter()
        .map(|n| BanRequest::new(*n, Origin::Manual, "manual", now, Lifetime::Permanent))
        .collect();
    let (mut added, mut already, mut permanent) = (0, 0, 0);
    // Told here, line by line: no daemon runs to tell it (nor hooks: see the README).
    let each = nets.len() <= LOG_EACH;
    let (outcomes, _) = bans.add(wanted, true, &mut progress(nets.len()))?;
    for (net, outcome) in nets.iter().zip(outcomes) {
        match outcome {
            Outcome::Unchanged => already += 1,
            Outcome::MadePermanent => {
                already += 1;
                permanent += 1;
                if each {
                    crate::info!("{}: temporary ban made permanent (manual)", net_text(net));
                }
            }
            Outcome::Done => {
                added += 1;
                if each {
                    crate::info!("banned {} (manual)", net_text(net));
                }
            }
            Outcome::Firewall(e) => {
                eprintln!("{}: recorded, but the firewall failed: {e}", net_text(net));
                ok = false;
            }
        }
    }
    if !each {
        crate::info!(
            "banned {added} of a list of {} (manual); {already} were banned already, {permanent} of them made permanent",
            nets.len()
        );
    }
    if permanent > 0 {
        eprintln!("{added} banned, {already} already banned, {permanent} of them made permanent");
    } else {
        eprintln!("{added} banned, {already} already banned");
    }
    Ok(ok)
}

/// Progress of a long list on a terminal's stderr: `N of M` after each batch.
fn progress(total: usize) -> impl FnMut(usize) {
    use std::io::IsTerminal;
    let show = total >= 10_000 && std::io::stderr().is_terminal();
    move |done| {
        if show {
            eprint!(
                "\r{done} of {total}{}",
                if done == total { "\n" } else { "" }
            );
        }
    }
}

/// `-d`: returns Ok(true) when every line was applied.
pub fn del(cfg: &Config, fw: Box<dyn Backend>, input: impl BufRead) -> Result<bool, Error> {
    let mut ok = true;
    let mut lines = Vec::new();
    let mut nets = Vec::new();
    for entry in read_addresses(input) {
        match entry {
            Ok((line, net)) => {
                lines.push(line);
                nets.push(net);
            }
            Err(bad) => {
                report(&bad);
                ok = false;
            }
        }
    }
    if nets.is_empty() {
        return Ok(ok);
    }
    if let Some(items) = through_daemon(cfg, &nets, Request::Del)? {
        let mut removed = 0;
        for item in items {
            match item.result {
                Ok(Done::Unbanned(n)) => removed += n,
                Ok(_) => {}
                Err(why) => {
                    eprintln!("{} {why}", item.net);
                    ok = false;
                }
            }
        }
        eprintln!("{removed} unbanned (by the running daemon; their penalties forgotten)");
        return Ok(ok);
    }
    let mut bans = Bans::open(cfg, fw)?;
    // A network lifts every ban inside it, as through the daemon.
    let (lines, nets) = within(&bans, &lines, &nets)?;
    let mut removed = 0;
    let each = nets.len() <= LOG_EACH;
    let (outcomes, _) = bans.remove(&nets, Lift::Manual, true, &mut progress(nets.len()))?;
    for ((line, net), outcome) in lines.iter().zip(&nets).zip(outcomes) {
        let text = net_text(net);
        match outcome {
            Outcome::Unchanged => {
                report(&BadLine {
                    line: *line,
                    msg: format!("{text} is not banned"),
                });
                ok = false;
            }
            Outcome::Done | Outcome::MadePermanent => {
                removed += 1;
                if each {
                    crate::info!("unbanned {text} (manual)");
                }
            }
            Outcome::Firewall(e) => {
                eprintln!("{text}: removed from the database, but the firewall failed: {e}");
                ok = false;
            }
        }
    }
    if !each {
        crate::info!("unbanned {removed} of a list of {} (manual)", nets.len());
    }
    eprintln!("{removed} unbanned");
    Ok(ok)
}

/// Hands a short list to the running daemon, which applies it in its loop (penalties of
/// what `-d` lifts forgotten); None when no daemon answers or the list is long. A long list
/// (an import) is applied by this process under the kernel lock, as without a daemon: in
/// the daemon's loop, parts of it held up bans (latency bench, 2,000 addresses imported and
/// removed over and over: time to ban p99 525 to 583 ms instead of a few ms).
/// An error that stopped the daemon half-way comes after the items it did answer, as one
/// more item that failed.
fn through_daemon(
    cfg: &Config,
    nets: &[IpNet],
    request: fn(List) -> Request,
) -> Result<Option<Vec<Item>>, Error> {
    use crate::control::client::{ask, Asked};
    if nets.len() > crate::control::LIST_PART {
        return Ok(None);
    }
    match ask(&cfg.socket, &request(List::of(nets)))? {
        Asked::NotRunning => Ok(None),
        Asked::Answer(Answer::Items { mut items, error }) => {
            items.extend(error.map(|e| Item {
                net: "error:".into(),
                result: Err(e),
            }));
            Ok(Some(items))
        }
        Asked::Answer(Answer::Error(e)) => Err(Error::Daemon(e)),
        Asked::Answer(Answer::Text(t)) => Err(Error::Protocol(format!(
            "the daemon answered a list with a report: {}",
            crate::log::printable(t.as_bytes())
        ))),
    }
}

/// `-d` of a network: the network's own ban and every active ban inside it, each with the
/// input line that asked for it.
fn within(
    bans: &Bans,
    lines: &[usize],
    nets: &[IpNet],
) -> Result<(Vec<usize>, Vec<IpNet>), StoreError> {
    if nets.iter().all(crate::addr::is_host) {
        return Ok((lines.to_vec(), nets.to_vec()));
    }
    let per_net = bans.active_within(nets)?;
    let (mut l, mut n) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for ((line, net), inside) in lines.iter().zip(nets).zip(per_net) {
        // Nothing active inside: the network itself, to be reported "not banned".
        let entries = if inside.is_empty() {
            vec![*net]
        } else {
            inside
        };
        for b in entries {
            if seen.insert(b) {
                l.push(*line);
                n.push(b);
            }
        }
    }
    Ok((l, n))
}

/// `-l`: aligned columns; AccountID is attacker text and is escaped before it reaches a
/// terminal.
pub fn list(cfg: &Config, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let store = Store::open(&cfg.db)?;
    let bans = store.active()?;
    let rows: Vec<[String; 5]> = bans
        .iter()
        .map(|b| {
            let reason = if b.origin == Origin::Crowdsec {
                format!(
                    "CrowdSec {} (from {})",
                    printable(b.reason.as_bytes()),
                    printable(b.service.as_bytes())
                )
            } else if b.reason == "subnet" {
                let n = store.folded_count(&b.net).unwrap_or(0);
                format!("subnet ({n} bans folded in)")
            } else if b.account.is_empty() {
                b.reason.clone()
            } else {
                format!("{} ({})", b.reason, printable(b.account.as_bytes()))
            };
            [
                net_text(&b.net),
                format_time(b.since),
                b.count.to_string(),
                reason,
                b.expires.map_or_else(|| "never".to_string(), format_time),
            ]
        })
        .collect();
    let head = ["ADDRESS", "SINCE", "COUNT", "REASON", "EXPIRES"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut emit = |cells: [&str; 5]| -> std::io::Result<()> {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        )
    };
    let mut result = emit(head);
    for r in &rows {
        result = result.and_then(|()| emit([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    let result = result.and_then(|()| writeln!(out, "{} ban(s)", rows.len()));
    match result {
        // The reader went away (`ampere -l | head`): nothing left to do, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("standard output", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Result<(usize, String), usize>> {
        lines_b(text.as_bytes())
    }

    fn lines_b(text: &[u8]) -> Vec<Result<(usize, String), usize>> {
        read_addresses(text)
            .into_iter()
            .map(|r| r.map(|(l, n)| (l, net_text(&n))).map_err(|b| b.line))
            .collect()
    }

    #[test]
    fn blocklist_format() {
        let text = "# header\n192.0.2.1\n\n198.51.100.7/24 ; SBL123\r\n  2001:db8::1  \n2001:db8:5::/48 # x\n";
        assert_eq!(
            lines(text),
            vec![
                Ok((2, "192.0.2.1".into())),
                Ok((4, "198.51.100.0/24".into())),
                Ok((5, "2001:db8::1".into())),
                Ok((6, "2001:db8:5::/48".into())),
            ]
        );
    }

    #[test]
    fn a_huge_line_is_refused_without_being_held_and_reading_goes_on() {
        let mut text = vec![b'1'; 10 << 20];
        text.extend_from_slice(b"\n192.0.2.1\n");
        text.extend_from_slice(&vec![b'x'; MAX_LINE + 1]);
        let got = lines_b(&text);
        assert_eq!(got, vec![Err(1), Ok((2, "192.0.2.1".into())), Err(3)]);
        let exact = format!("{}\n", "#".repeat(MAX_LINE));
        assert!(
            lines(&exact).is_empty(),
            "a line of exactly the limit is read"
        );
    }

    #[test]
    fn hostile_lines_are_rejected_with_their_number() {
        let text = b"1.2.3.4;touch /tmp/x\n$(id)\n`id`\n1.2.3.4 && reboot\n1.2.3.4/33\n999.1.1.1\n\xff\xfe\n-j ACCEPT\n";
        assert_eq!(
            lines_b(text),
            vec![
                Err(1),
                Err(2),
                Err(3),
                Err(4),
                Err(5),
                Err(6),
                Err(7),
                Err(8)
            ]
        );
    }
}
