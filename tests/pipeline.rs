//! One pipeline: `--replay` and the daemon ban exactly the same networks for every capture,
//! under configs that change what the pipeline decides after the verdict (the family
//! check, prefixes, the unknown-account rule, trust). Before the pipeline was one,
//! `--replay` with `ipv6 = no` printed an IPv6 ban the daemon refused.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Every AMI capture in `tests/fixtures/ami` that is an attack scenario (not the answers to
/// actions, not the reconnections).
fn captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ami") && !n.contains("reconnect") && !n.contains("-actions"))
        .collect();
    v.sort();
    v
}

/// What `--replay` bans, sorted network texts.
fn replayed(setup: &Setup, file: &str) -> Vec<String> {
    let path = fixture_dir().join(file);
    let (code, out, err) = setup.run(&["--replay", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{file}: {err}");
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("ban "))
        .map(|l| {
            ampere::addr::net_text(&ampere::addr::parse_net(l.split(' ').next().unwrap()).unwrap())
        })
        .collect();
    v.sort();
    // Printed twice when strong evidence replaced a weak ban (the daemon bans it again).
    v.dedup();
    v
}

/// What the daemon bans when the capture is replayed to it over TCP: in the database and,
/// the same, in the kernel (what the recorder holds at the end).
fn daemon_bans(file: &str, extra: &str) -> Vec<String> {
    let bind = if file == "ipv6.ami" {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let plans = vec![Plan::Replay {
        file: file.into(),
        speed: 0.0,
    }];
    let server = AmiServer::start_on(bind, plans, Duration::ZERO);
    let setup = Setup::new(Some(server.addr), extra);
    let d = setup.spawn();
    // Played to the end, and Ampere back for one more connection: everything read.
    wait_for(120, &format!("{file} played"), || {
        server.finished() >= 1 && server.accepted() > 1
    });
    assert_eq!(d.stop(), 0, "{file}: {}", setup.log());
    let stored = setup.stored();
    let mut kernel: Vec<String> = setup
        .rec
        .held()
        .into_iter()
        .map(|(_, n)| ampere::addr::net_text(&ampere::addr::parse_net(&n).unwrap()))
        .collect();
    kernel.sort();
    assert_eq!(
        kernel, stored,
        "{file} with `{extra}`: kernel against database"
    );
    stored
}

#[test]
fn replay_and_the_daemon_ban_alike_under_every_config() {
    let configs = [
        "",
        "ipv6 = no\n",
        "ipv6_prefix = 128\n",
        "ban_unknown_account = no\n",
        "trust = 203.0.113.0/24\ntrust = 2001:db8:99::/48\n",
    ];
    let files = captures();
    assert!(files.len() >= 25, "{files:?}");
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut total = 0;
    for extra in configs {
        let replay_setup = Setup::new(None, extra);
        let want: Vec<(String, Vec<String>)> = files
            .iter()
            .map(|f| (f.clone(), replayed(&replay_setup, f)))
            .collect();
        // A few daemons at a time: the machine may be busy with a compile.
        for chunk in want.chunks(8) {
            let handles: Vec<_> = chunk
                .iter()
                .cloned()
                .map(|(file, replay)| {
                    let failures = failures.clone();
                    let extra = extra.to_string();
                    std::thread::spawn(move || {
                        let got = daemon_bans(&file, &extra);
                        if got != replay {
                            failures.lock().unwrap().push(format!(
                                "{file} with `{}`: replay {replay:?}, daemon {got:?}",
                                extra.trim()
                            ));
                        }
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("a daemon run panicked: {e:?}"));
                }
            }
        }
        total += want.len();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("measured: {total} replays and daemon runs agree");
}

#[test]
fn with_ipv6_off_replay_prints_no_ipv6_ban_and_says_why() {
    // The defect this pipeline fixed: `--replay` printed `ban 2001:db8:99::/64` that the
    // daemon refuses. (The capture is UDP: its ban would be of the address alone.)
    let setup = Setup::new(None, "ipv6 = no\n");
    let path = fixture_dir().join("ipv6.ami");
    let (code, out, err) = setup.run(&["--replay", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("ban 2001:"), "{out}");
    assert!(
        err.contains("2001:db8:99::2 reached the limit (15) but is not banned: it is IPv6, and IPv6 is disabled (ipv6 = no)"),
        "{err}"
    );
}
