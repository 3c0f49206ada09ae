//! Bounded storage: a botnet of distinct addresses fills the database past `db_max_inactive`;
//! the oldest expired bans go, active ones never do, and an address banned again within
//! `ban_forget` still gets a longer ban; and iptables, a rule per ban, says at start and in
//! `status` when its rule count makes every command slow. The real binary (on a test clock,
//! `AMPERE_TEST_CLOCK`, where time matters), the test AMI server over TCP, a real SQLite file.

mod common;

use std::sync::{mpsc, Arc, Mutex};

use common::*;

/// An unknown account over TCP (strong evidence: banned at once with `ban_unknown_account`).
fn probe(addr: &str, n: usize) -> Vec<u8> {
    format!(
        "Event: InvalidAccountID\r\nPrivilege: security,all\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 9999\r\nSessionID: probe{n}\r\nLocalAddress: IPV4/TCP/192.0.2.2/5060\r\nRemoteAddress: IPV4/TCP/{addr}/43952\r\n\r\n"
    )
    .into_bytes()
}

fn attacker(i: usize) -> String {
    format!("198.51.{}.{}", 100 + i / 200, 1 + i % 200)
}

fn count_of(setup: &Setup, addr: &str) -> Option<(i64, bool)> {
    let net = vec![ampere::addr::parse_net(addr).unwrap()];
    let store = ampere::store::Store::open(&setup.db).unwrap();
    let r = store.records_of(&net).unwrap();
    r.first().map(|r| (r.ban.count, r.active))
}

#[test]
fn the_oldest_expired_bans_go_active_ones_never_and_a_repeat_still_escalates() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(
        Some(server.addr),
        "bantime = 60\nbantime_factor = 2\nban_unknown_account = yes\n\
         db_max_inactive = 100\nban_forget = 2d\nmax_bans = 10000\n",
    );
    let clock = setup.dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let mut cmd = ampere();
    cmd.env("AMPERE_TEST_CLOCK", &clock);
    let d = setup.spawn_in(cmd);
    wait_for(10, "login", || setup.log().contains("logged in to AMI"));
    // An admin's permanent ban, and then 150 attackers: 50 an hour before the other 100.
    let (code, _, err) = setup.run(&["-a"], "192.0.2.200\n");
    assert_eq!(code, 0, "{err}");
    let wave = |from: usize, to: usize| {
        let events: Vec<u8> = (from..to).flat_map(|i| probe(&attacker(i), i)).collect();
        tx.send(events).unwrap();
        wait_for(20, "the wave's bans", || {
            setup.stored().len() == 1 + to - from
        });
    };
    wave(0, 50);
    std::fs::write(&clock, "3600").unwrap();
    wave(50, 150);
    // Their bans expire (60 s); then the hourly forgetting runs.
    std::fs::write(&clock, "3700").unwrap();
    wait_for(10, "the expiry", || setup.stored() == ["192.0.2.200"]);
    std::fs::write(&clock, "7300").unwrap();
    wait_for(10, "the forgetting", || {
        setup.status_key("db_inactive") == Some(100)
    });
    assert_eq!(setup.status_key("bans_forgotten"), Some(50));
    assert!(setup.status_key("db_bytes").unwrap() > 0);
    for i in 0..50 {
        assert_eq!(count_of(&setup, &attacker(i)), None, "{} kept", attacker(i));
    }
    for i in 50..150 {
        assert_eq!(count_of(&setup, &attacker(i)), Some((1, false)));
    }
    assert_eq!(count_of(&setup, "192.0.2.200").map(|c| c.1), Some(true));
    // Banned again: the remembered one escalates (its second ban), the forgotten one is a
    // first ban again.
    tx.send([probe(&attacker(60), 1000), probe(&attacker(10), 1001)].concat())
        .unwrap();
    wait_for(10, "the repeat bans", || setup.stored().len() == 3);
    assert_eq!(count_of(&setup, &attacker(60)), Some((2, true)));
    assert_eq!(count_of(&setup, &attacker(10)), Some((1, true)));
    // The log line comes after the database's commit.
    wait_for(10, "the second ban's log line", || {
        setup
            .log()
            .lines()
            .any(|l| l.contains(&format!("ban {}: ", attacker(60))) && l.contains("ban #2 until"))
    });
    // Two days without a ban: every expired row goes; the active ones stay.
    std::fs::write(&clock, (7300 + 3 * 86400).to_string()).unwrap();
    wait_for(10, "the forgetting after ban_forget", || {
        setup.status_key("db_inactive") == Some(0)
    });
    assert_eq!(count_of(&setup, "192.0.2.200").map(|c| c.1), Some(true));
    drop(d);
}

#[test]
fn iptables_says_at_start_and_in_status_when_its_rule_count_makes_it_slow() {
    let setup = Setup::new(None, "");
    let list: String = (0..10_001u32)
        .map(|i| format!("{}\n", std::net::Ipv4Addr::from(0x6440_0000 + i)))
        .collect();
    let (code, _, err) = setup.run(&["-a"], &list);
    assert_eq!(code, 0, "{err}");
    let d = setup.spawn();
    wait_for(20, "the warning at start", || {
        setup.log().contains("10001 bans are 10001 iptables rules")
    });
    wait_for(10, "the control socket", || {
        setup.run(&["status"], "").0 == 0
    });
    let status = setup.run(&["status"], "").1;
    assert!(
        status.contains("WARNING: 10001 bans are 10001 iptables rules")
            && status.contains("use backend = ipset"),
        "{status}"
    );
    drop(d);
    // Below the threshold: not a word.
    let quiet = Setup::new(None, "");
    let (code, _, err) = quiet.run(&["-a"], "192.0.2.1\n");
    assert_eq!(code, 0, "{err}");
    let d = quiet.spawn();
    wait_for(10, "the control socket", || {
        quiet.run(&["status"], "").0 == 0
    });
    assert!(!quiet.run(&["status"], "").1.contains("iptables rules"));
    assert!(!quiet.log().contains("iptables rules"));
    drop(d);
}
