//! The control socket with the real binary and the test AMI server: `ampere status` while
//! connected, during a reconnect and with the daemon stopped; `ampere why` for each kind of
//! address; hostile clients that must never hold up banning.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A daemon logged in to a test AMI server whose first session plays what the test sends;
/// later connections are reset (Asterisk restarting).
fn fed(extra: &str) -> (Setup, AmiServer, Daemon, mpsc::Sender<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let mut plans = vec![Plan::Feed(Arc::new(Mutex::new(rx)))];
    plans.extend(std::iter::repeat_n(Plan::Reset, 200));
    let server = AmiServer::start(plans);
    let setup = Setup::new(Some(server.addr), extra);
    let d = setup.spawn();
    wait_for(10, "AMI login", || setup.log().contains("logged in to AMI"));
    (setup, server, d, tx)
}

fn shutdown_event() -> Vec<u8> {
    fixture_events("restart.ami", &[])
        .into_iter()
        .find(|m| m.starts_with(b"Event: Shutdown"))
        .expect("restart.ami has its Shutdown")
}

#[test]
fn status_while_connected_during_a_reconnect_and_stopped() {
    let (setup, server, d, tx) = fed("");
    // In this order: once the ban is stored, both events were read.
    tx.send(crf_event(2, "IPV4/TCP/198.51.100.4/5060").into_bytes())
        .unwrap();
    tx.send(invalid_account_event(1, "IPV4/TCP/203.0.113.9/5060").into_bytes())
        .unwrap();
    wait_for(10, "the ban", || setup.stored() == ["203.0.113.9"]);
    let socket = setup.socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "only root may ask"
    );

    let (code, out, err) = setup.run(&["status"], "");
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    for want in [
        &format!("AMI:      logged in to {} since", server.addr) as &str,
        "(Asterisk Call Manager/",
        "bans:     1 active (daemon 1)",
        "near the limit (15):",
        "198.51.100.4",
        "203.0.113.9  InvalidAccountID (PJSIP) account `101`  [daemon, penalty 15, ban #1]  permanent",
    ] {
        assert!(out.contains(want), "`{want}` missing from:\n{out}");
    }
    let (code, keys, _) = setup.run(&["status", "keys"], "");
    assert_eq!(code, 0);
    for want in [
        "running 1\n",
        "ami_logged_in 1\n",
        "bans_active 1\n",
        "bans_active_daemon 1\n",
        "events_total 2\n",
    ] {
        assert!(keys.contains(want), "`{want}` missing from:\n{keys}");
    }

    // Asterisk restarts and refuses the sessions meanwhile: status says so.
    tx.send(shutdown_event()).unwrap();
    wait_for(10, "the reconnects", || server.accepted() >= 3);
    let (code, out, _) = setup.run(&["-s"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("AMI:      NOT logged in to {}: ", server.addr)),
        "{out}"
    );

    assert_eq!(d.stop(), 0);
    assert!(
        !socket.exists(),
        "the socket is removed at the stop:\n{}",
        setup.log()
    );
    let (code, out, _) = setup.run(&["status"], "");
    assert_eq!(code, 3, "LSB: not running\n{out}");
    assert!(out.contains("Ampere is not running"), "{out}");
    assert!(out.contains(": 1 active (daemon 1)"), "{out}");
    assert!(out.contains("203.0.113.9  InvalidAccountID"), "{out}");
    let (code, keys, _) = setup.run(&["status", "keys"], "");
    assert_eq!(
        (code, keys.as_str()),
        (3, "running 0\nbans_active 1\nbans_active_daemon 1\n")
    );
}

#[test]
fn why_names_the_ban_the_penalty_and_the_trust_line() {
    let (setup, _server, d, tx) = fed("trust = 192.0.2.0/24\nbantime = 2\n");
    // Line of the trust entry in the test's config.
    let cfg = std::fs::read_to_string(&setup.cfg).unwrap();
    let trust_line = cfg.lines().position(|l| l.starts_with("trust =")).unwrap() + 1;
    // 203.0.113.10's ban ends after 2 s: an unbanned address with a history.
    tx.send(invalid_account_event(2, "IPV4/TCP/203.0.113.10/5060").into_bytes())
        .unwrap();
    wait_for(10, "the first ban", || setup.stored() == ["203.0.113.10"]);
    wait_for(10, "its expiry", || setup.stored().is_empty());
    std::fs::write(&setup.cfg, cfg.replace("bantime = 2", "bantime = 0")).unwrap();
    d.signal("HUP");
    wait_for(10, "the reload", || setup.log().contains("config reloaded"));
    tx.send(invalid_account_event(1, "IPV4/TCP/203.0.113.9/5060").into_bytes())
        .unwrap();
    tx.send(crf_event(3, "IPV4/TCP/198.51.100.4/5060").into_bytes())
        .unwrap();
    wait_for(10, "the second ban", || setup.stored() == ["203.0.113.9"]);
    let (code, _, err) = setup.run(&["-a"], "198.51.100.0/24\n");
    assert_eq!(code, 0, "{err}");

    let why = |addr: &str| {
        let (code, out, err) = setup.run(&["why", addr], "");
        assert_eq!(code, 0, "{out}{err}");
        println!("{out}");
        out
    };
    let out = why("203.0.113.9");
    assert!(out.contains("BANNED: "), "{out}");
    assert!(
        out.contains("203.0.113.9  InvalidAccountID (PJSIP) account `101`"),
        "{out}"
    );
    assert!(out.contains("trusted: no"), "{out}");
    assert!(out.contains("kernel: drops it (203.0.113.9)"), "{out}");

    let out = why("203.0.113.10");
    assert!(
        out.contains("was banned: ") && out.contains("ended "),
        "{out}"
    );
    assert!(out.contains("penalty now: none"), "{out}");

    // Below the limit and inside a network banned by the admin.
    let out = why("198.51.100.4");
    assert!(
        out.contains("penalty now: 1 of 15 (scored as 198.51.100.4)"),
        "{out}"
    );
    assert!(
        out.contains("BANNED: ") && out.contains("198.51.100.0/24  manual"),
        "{out}"
    );
    assert!(out.contains("[ampere -a, ban #1]  permanent"), "{out}");

    let out = why("192.0.2.5");
    assert!(
        out.contains(&format!(
            "trusted: yes, by `trust = 192.0.2.0/24` ({}:{trust_line})",
            setup.cfg.display()
        )),
        "{out}"
    );
    assert!(out.contains("protected: never banned"), "{out}");

    let out = why("10.1.2.3");
    assert!(out.contains("bans: none, now or before"), "{out}");
    assert!(out.contains("kernel: no active ban to hold"), "{out}");

    let (code, out, _) = setup.run(&["why", "not-an-address"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("error: "), "{out}");

    // Without the daemon: the database's answer, and no penalty to tell.
    assert_eq!(d.stop(), 0);
    let out = why("203.0.113.9");
    assert!(out.contains("BANNED: "), "{out}");
    assert!(
        out.contains("penalty now: unknown (the daemon is not running)"),
        "{out}"
    );
}

/// Opens a connection to the daemon's socket.
fn connect(setup: &Setup) -> UnixStream {
    UnixStream::connect(setup.socket()).unwrap()
}

#[test]
fn hostile_clients_never_hold_up_banning() {
    let (setup, _server, d, tx) = fed("");
    // One that connects and sends nothing, one that sends 10 MB without a newline, one that
    // asks and never reads, and more than the daemon serves at once.
    let silent = connect(&setup);
    let mut flooder = connect(&setup);
    flooder
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let big = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 10 << 20 {
            match flooder.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let mut answer = String::new();
        let _ = flooder.read_to_string(&mut answer);
        (sent, answer)
    });
    let mut mute = connect(&setup);
    mute.write_all(b"status\n").unwrap();
    let (sent, answer) = big.join().unwrap();
    assert!(
        answer.starts_with("error: a request is one line of at most 512 bytes"),
        "after {sent} bytes: {answer:?}"
    );
    assert!(
        sent < 10 << 20,
        "the daemon kept reading: {sent} bytes taken"
    );
    // More than it serves at once: the oldest make room.
    let crowd: Vec<UnixStream> = (0..12).map(|_| connect(&setup)).collect();

    // Meanwhile attackers keep coming, each banned at its first probe.
    let t = Instant::now();
    for i in 0..200u64 {
        let addr = format!("IPV4/TCP/10.9.{}.{}/5060", i / 250, i % 250 + 1);
        tx.send(invalid_account_event(i, &addr).into_bytes())
            .unwrap();
    }
    wait_for(30, "200 bans with hostile clients attached", || {
        setup.stored().len() == 200
    });
    println!(
        "measured: 200 bans in {:.2} s with the hostile clients attached",
        t.elapsed().as_secs_f64()
    );
    // An honest admin still gets an answer.
    let (code, out, err) = setup.run(&["status"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bans:     200 active"), "{out}");
    drop((silent, mute, crowd));
    let mut d = d;
    assert!(d.is_running());
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_stops_a_second_daemon() {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx))); 4]);
    let setup = Setup::new(Some(server.addr), "");
    // A daemon killed with -9 leaves its socket file behind.
    drop(UnixListener::bind(setup.socket()).unwrap());
    assert!(setup.socket().exists());
    let d = setup.spawn();
    wait_for(10, "AMI login", || setup.log().contains("logged in to AMI"));
    tx.send(invalid_account_event(1, "IPV4/TCP/203.0.113.9/5060").into_bytes())
        .unwrap();
    // The database first, then the kernel: wait for the kernel's part too.
    wait_for(10, "the ban", || setup.stored() == ["203.0.113.9"]);
    wait_for(10, "the ban in the firewall", || {
        !setup.rec.bans().is_empty()
    });
    let calls = setup.rec.calls().len();

    // A second daemon on the same socket fails before it touches the firewall.
    let (code, out, err) = setup.run(&[], "");
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("another Ampere is running"), "{err}");
    assert_eq!(
        setup.rec.calls()[calls..],
        [],
        "the second daemon ran a firewall tool"
    );
    let (code, out, _) = setup.run(&["status"], "");
    assert_eq!(code, 0, "the first daemon still answers: {out}");
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_socket_held_by_something_that_never_answers_does_not_stop_a_restart() {
    // A daemon killed with -9 while a firewall tool it started was between fork and exec:
    // the orphan holds a copy of the listening socket for a while (seen under load in the
    // SIGKILL test), so a connect succeeds, but nothing will ever answer there.
    let (_tx, rx) = mpsc::channel::<Vec<u8>>();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx))); 2]);
    let setup = Setup::new(Some(server.addr), "");
    let orphan = UnixListener::bind(setup.socket()).unwrap();
    let d = setup.spawn();
    wait_for(15, "AMI login", || setup.log().contains("logged in to AMI"));
    assert!(
        setup.log().contains("does not answer"),
        "the silent socket is named in the log:\n{}",
        setup.log()
    );
    let (code, out, _) = setup.run(&["status"], "");
    assert_eq!(code, 0, "the new daemon answers at the path: {out}");
    drop(orphan);
    assert_eq!(d.stop(), 0);
}

/// `onban`/`onunban` scripts that append their arguments to a file in `dir`.
fn recording_hooks(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let out = dir.join("hooks.out");
    let lock = exec_lock();
    for (name, line) in [("onban", "ban $1 $2"), ("onunban", "unban $1 $2")] {
        let f = dir.join(name);
        std::fs::write(
            &f,
            format!("#!/bin/sh\necho \"{line}\" >> {}\n", out.display()),
        )
        .unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    drop(lock);
    let cfg = format!(
        "onban = {}\nonunban = {}\n",
        dir.join("onban").display(),
        dir.join("onunban").display()
    );
    (cfg, out)
}

#[test]
fn add_and_del_go_through_the_running_daemon() {
    let hooks_dir = tempfile::tempdir().unwrap();
    let (hooks, hooks_out) = recording_hooks(hooks_dir.path());
    let (setup, _server, d, tx) = fed(&hooks);
    // 14 of the 15 that ban.
    for i in 0..14 {
        tx.send(crf_event(i, "IPV4/TCP/198.51.100.4/5060").into_bytes())
            .unwrap();
    }
    wait_for(10, "the penalty", || {
        setup
            .run(&["why", "198.51.100.4"], "")
            .1
            .contains("penalty now: 14 of 15")
    });
    // `-d` of a host that is not banned: nothing to lift, but it starts from zero.
    let (code, _, err) = setup.run(&["-d"], "198.51.100.4\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("198.51.100.4 is not banned"), "{err}");
    let out = setup.run(&["why", "198.51.100.4"], "").1;
    assert!(out.contains("penalty now: none"), "{out}");
    tx.send(crf_event(99, "IPV4/TCP/198.51.100.4/5060").into_bytes())
        .unwrap();
    wait_for(10, "the next event scored", || {
        setup
            .run(&["why", "198.51.100.4"], "")
            .1
            .contains("penalty now: 1 of 15")
    });
    assert!(setup.stored().is_empty(), "one failure after -d banned it");

    // `-a` through the daemon, and `-d` of a network lifts every ban inside it.
    let (code, _, err) = setup.run(&["-a"], "192.0.2.9\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 banned, 0 already banned (by the running daemon)"),
        "{err}"
    );
    assert!(
        setup
            .log()
            .contains("ban 192.0.2.9: manual (ampere -a); ban #1 permanent"),
        "{}",
        setup.log()
    );
    // Like every other ban, it runs the hook (it did not before).
    let hooked = || std::fs::read_to_string(&hooks_out).unwrap_or_default();
    wait_for(10, "the onban hook of the -a", || {
        hooked().contains("ban 192.0.2.9 manual\n")
    });
    for (i, a) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        tx.send(invalid_account_event(i as u64, &format!("IPV4/TCP/{a}/5060")).into_bytes())
            .unwrap();
    }
    wait_for(10, "three bans in one /24", || setup.stored().len() == 4);
    let (code, _, err) = setup.run(&["-d"], "203.0.113.0/24\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 unbanned (by the running daemon"), "{err}");
    assert_eq!(setup.stored(), ["192.0.2.9"]);
    let unbans: Vec<String> = setup
        .rec
        .calls()
        .iter()
        .filter(|c| c.args.iter().any(|a| a == "-D") || c.stdin.contains("-D "))
        .map(|c| format!("{} {}{}", c.cmd, c.args.join(" "), c.stdin))
        .collect();
    for a in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert!(
            unbans.iter().any(|u| u.contains(a)),
            "{a} not lifted: {unbans:?}"
        );
        wait_for(10, "the onunban hook of the -d", || {
            hooked().contains(&format!("unban {a} manual\n"))
        });
    }
    assert_eq!(d.stop(), 0);
}
