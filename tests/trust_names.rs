//! Trust by name with a resolver the test controls: the daemon runs in a mount namespace of
//! its own, where /etc/hosts is the test's file (rewritten in place to move a name) and
//! name lookups never leave the hosts file (nsswitch `files` only, a resolv.conf on
//! loopback). The address changes: the old one loses protection, the new one gains it, and
//! a ban of the new one is lifted.
//!
//! Needs root and `unshare` (util-linux) for the mount namespace: without them the test
//! FAILS saying so. `.ci/run` runs it as root.

mod common;

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Name lookups that read only the hosts file.
const FILES_ONLY: (&str, &str) = (
    "hosts: files\n",
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
);

/// `unshare` wrapping the binary: a private mount namespace where /etc/hosts,
/// /etc/nsswitch.conf and /etc/resolv.conf are the files in `dir` (the last two written
/// from `lookup`). `unshare` and `sh` exec in place, so the pid is the daemon's.
fn in_namespace(dir: &Path, lookup: (&str, &str)) -> Command {
    let euid = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        .unwrap();
    assert!(
        euid == "0" && Path::new("/usr/bin/unshare").exists(),
        "trust by name is tested in a mount namespace: run as root with util-linux's unshare (`make test` as root, as .ci/run does)"
    );
    fs::write(dir.join("nsswitch.conf"), lookup.0).unwrap();
    fs::write(dir.join("resolv.conf"), lookup.1).unwrap();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "for f in hosts nsswitch.conf resolv.conf; do mount --bind \"$0/$f\" \"/etc/$f\" || exit 97; done; exec \"$@\"",
        )
        .arg(dir)
        .arg(bin());
    c
}

fn unbanned_in_kernel(rec: &Recorder, addr: &str) -> bool {
    rec.calls().iter().any(|c| {
        (c.args.iter().any(|a| a == "-D") && c.args.iter().any(|a| a == addr))
            || c.stdin
                .lines()
                .any(|l| l.starts_with("-D ") && l.contains(addr))
    })
}

#[test]
fn a_trusted_name_follows_its_address() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(
        Some(server.addr),
        "trust = office.ampere.test\ntrust = nowhere.ampere.test\ntrust = 192.0.2.0/24\ntrust_refresh = 1\n",
    );
    let hosts = setup.dir.path().join("hosts");
    fs::write(
        &hosts,
        "127.0.0.1 localhost\n203.0.113.7 office.ampere.test\n",
    )
    .unwrap();
    let cfg = fs::read_to_string(&setup.cfg).unwrap();
    let name_line = cfg
        .lines()
        .position(|l| l == "trust = office.ampere.test")
        .unwrap()
        + 1;

    let d = setup.spawn_in(in_namespace(setup.dir.path(), FILES_ONLY));
    wait_for(10, "AMI login", || setup.log().contains("logged in to AMI"));
    let log = setup.log();
    assert!(
        log.contains("trust office.ampere.test: 203.0.113.7"),
        "{log}"
    );
    assert!(
        log.contains("trust nowhere.ampere.test does not resolve"),
        "a name that does not resolve is a warning:\n{log}"
    );
    assert!(
        log.find("trust office.ampere.test").unwrap() < log.find("logged in to AMI").unwrap(),
        "the names are resolved before the first event is read:\n{log}"
    );

    // The office, a literal trust entry and an attacker: only the attacker is banned (in
    // this order, so that its ban means the others were read).
    for (i, from) in ["203.0.113.7", "192.0.2.5", "203.0.113.9"]
        .iter()
        .enumerate()
    {
        let event = invalid_account_event(i as u64, &format!("IPV4/TCP/{from}/5060"));
        tx.send(event.into_bytes()).unwrap();
    }
    wait_for(10, "the attacker's ban", || !setup.stored().is_empty());
    assert_eq!(setup.stored(), ["203.0.113.9"]);

    let (code, out, err) = setup.run(&["why", "203.0.113.7"], "");
    assert_eq!(code, 0, "{err}");
    let by = format!(
        "trusted: yes, by `trust = office.ampere.test` ({}:{name_line}), which resolves to 203.0.113.7",
        setup.cfg.display()
    );
    assert!(out.contains(&by), "{out}");
    let (_, out, _) = setup.run(&["status"], "");
    assert!(
        out.contains("trust:    office.ampere.test 203.0.113.7; nowhere.ampere.test (no address yet) (the last lookup failed)"),
        "{out}"
    );

    // The office moves to the attacker's address: within a refresh the new address is
    // trusted and its ban lifted, and the old one is scored like any other.
    fs::write(
        &hosts,
        "127.0.0.1 localhost\n203.0.113.9 office.ampere.test\n",
    )
    .unwrap();
    wait_for(10, "the new address", || {
        setup
            .log()
            .contains("trust office.ampere.test: 203.0.113.7 -> 203.0.113.9")
    });
    wait_for(10, "the lifted ban", || {
        setup
            .log()
            .contains("unban 203.0.113.9: it is protected now")
    });
    assert!(setup.stored().is_empty());
    assert!(
        unbanned_in_kernel(&setup.rec, "203.0.113.9/32"),
        "{:?}",
        setup.rec.calls()
    );
    for (i, from) in ["203.0.113.9", "203.0.113.7"].iter().enumerate() {
        let event = invalid_account_event(10 + i as u64, &format!("IPV4/TCP/{from}/5060"));
        tx.send(event.into_bytes()).unwrap();
    }
    wait_for(10, "the old address's ban", || !setup.stored().is_empty());
    assert_eq!(setup.stored(), ["203.0.113.7"]);
    let (_, out, _) = setup.run(&["why", "203.0.113.7"], "");
    assert!(out.contains("trusted: no"), "{out}");

    // `-t` looks the names up and shows the failures first.
    let (code, out, err) = setup.run_in(in_namespace(setup.dir.path(), FILES_ONLY), &["-t"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("# trust office.ampere.test resolves to 203.0.113.9"),
        "{out}"
    );
    assert!(
        err.contains("trust nowhere.ampere.test does not resolve"),
        "{err}"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_name_stuck_in_dns_never_holds_up_banning() {
    // A name server on loopback that never answers, and a C library told to wait for it
    // 30 s a try, five tries: only Ampere's own limit ends the lookup.
    let dns = UdpSocket::bind("127.53.53.53:53")
        .expect("this test needs UDP 127.53.53.53:53 for a silent name server");
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(
        Some(server.addr),
        "trust = slow.ampere.test\ntrust = 192.0.2.0/24\ntrust_refresh = 1\n",
    );
    fs::write(setup.dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
    let stuck = (
        "hosts: files dns\n",
        "nameserver 127.53.53.53\noptions timeout:30 attempts:5\n",
    );
    let started = Instant::now();
    let d = setup.spawn_in(in_namespace(setup.dir.path(), stuck));
    wait_for(40, "AMI login", || setup.log().contains("logged in to AMI"));
    let waited = started.elapsed();
    let log = setup.log();
    assert!(
        log.contains("trust: no answer for slow.ampere.test within 10s"),
        "{log}"
    );
    let mut query = [0u8; 512];
    dns.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = dns
        .recv_from(&mut query)
        .expect("the lookup asked the name server");
    assert!(n > 12, "a DNS query");
    println!("start waited {waited:?} for the stuck name (limit 10 s)");

    // Lookups keep getting stuck (one starts each second): events are judged meanwhile.
    let sent = Instant::now();
    tx.send(invalid_account_event(1, "IPV4/TCP/203.0.113.9/5060").into_bytes())
        .unwrap();
    wait_for(10, "the ban", || !setup.stored().is_empty());
    let took = sent.elapsed();
    println!("ban {took:?} after the event, with a lookup stuck");
    assert!(
        took < Duration::from_secs(5),
        "the loop waited for DNS: {took:?}"
    );
    // The literal entry still protects.
    tx.send(invalid_account_event(2, "IPV4/TCP/192.0.2.5/5060").into_bytes())
        .unwrap();
    tx.send(invalid_account_event(3, "IPV4/TCP/203.0.113.10/5060").into_bytes())
        .unwrap();
    wait_for(10, "the second ban", || setup.stored().len() == 2);
    assert_eq!(setup.stored(), ["203.0.113.10", "203.0.113.9"]);
    let (code, out, _) = setup.run(&["status"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("trust:    slow.ampere.test (no address yet)"),
        "{out}"
    );
    assert_eq!(d.stop(), 0);
}
