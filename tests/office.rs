//! An office behind one NAT address: phones with the right password that Asterisk's policy
//! refuses (a contact limit), and a device with an old password beside working phones. No
//! phone is banned for good, through restarts of Ampere and of Asterisk, and `status` names
//! what is wrong. The daemon runs on a test clock (`AMPERE_TEST_CLOCK`): an hour played in
//! seconds, with its bans expiring on that clock.

mod common;

use std::sync::{mpsc, Arc, Mutex};

use common::*;

const OFFICE: &str = "10.99.1.2";

fn pjsip(kind: &str, account: &str, session: &str) -> Vec<u8> {
    format!(
        "Event: {kind}\r\nPrivilege: security,all\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: {account}\r\nSessionID: {session}\r\nLocalAddress: IPV4/UDP/192.0.2.2/5060\r\nRemoteAddress: IPV4/UDP/{OFFICE}/43952\r\nChallenge: \r\n\r\n"
    )
    .into_bytes()
}

/// A REGISTER with the right password: challenged, accepted.
fn register(account: &str, n: u32) -> Vec<u8> {
    let s = format!("reg{account}-{n}");
    [
        pjsip("ChallengeSent", account, &s),
        pjsip("SuccessfulAuth", account, &s),
    ]
    .concat()
}

const SHUTDOWN: &[u8] =
    b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n";

/// The daemon on the test clock in `clock` (seconds added to its clocks).
fn spawn(setup: &Setup, clock: &std::path::Path) -> Daemon {
    let mut cmd = ampere();
    cmd.env("AMPERE_TEST_CLOCK", clock);
    setup.spawn_in(cmd)
}

#[test]
fn a_stale_password_beside_working_phones_is_never_banned_for_good() {
    let (tx, rx) = mpsc::channel();
    let rx = Arc::new(Mutex::new(rx));
    let server = AmiServer::start((0..4).map(|_| Plan::Feed(rx.clone())).collect());
    let setup = Setup::new(Some(server.addr), "");
    let clock = setup.dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let mut d = spawn(&setup, &clock);
    wait_for(10, "login", || setup.log().contains("logged in to AMI"));
    // Both lines registered; then 1002's password changes and its device retries every
    // 30 s for an hour, while 1001 re-registers every 5 min.
    tx.send([register("1001", 0), register("1002", 0)].concat())
        .unwrap();
    let mut events = 4;
    wait_for(10, "the registrations", || {
        setup.status_key("events_total") == Some(events)
    });
    for i in 1..=120u32 {
        std::fs::write(&clock, (i * 30).to_string()).unwrap();
        let s = format!("stale{i}");
        let mut batch = [
            pjsip("ChallengeSent", "1002", &s),
            pjsip("ChallengeResponseFailed", "1002", &s),
        ]
        .concat();
        events += 2;
        if i % 10 == 0 {
            batch.extend(register("1001", i));
            events += 2;
        }
        tx.send(batch).unwrap();
        match i {
            // Ampere restarts (its penalties and notes start over; what it knows of the
            // office is in the database).
            45 => {
                wait_for(10, "the events", || {
                    setup.status_key("events_total") == Some(events)
                });
                assert_eq!(d.stop(), 0);
                d = spawn(&setup, &clock);
                wait_for(10, "login after the restart", || {
                    setup.log().matches("logged in to AMI").count() == 2
                });
                events = 0;
            }
            // Asterisk restarts; Ampere logs in again.
            75 => {
                tx.send(SHUTDOWN.to_vec()).unwrap();
                wait_for(10, "login after Asterisk's restart", || {
                    setup.log().matches("logged in to AMI").count() == 3
                });
            }
            _ => wait_for(10, "the events", || {
                setup.status_key("events_total") == Some(events)
            }),
        }
    }
    let (_, status, _) = setup.run(&["status"], "");
    let (_, why, _) = setup.run(&["why", OFFICE], "");
    assert_eq!(d.stop(), 0);
    let log = setup.log();
    // Banned now and then for 5 min, never for good, never for anything but the old
    // password.
    let bans: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("info: ban {OFFICE}:")))
        .collect();
    assert!(bans.len() >= 3, "{log}");
    for b in &bans {
        assert!(
            b.contains("stale password from account `1002`") && b.contains("not counted"),
            "{b}"
        );
    }
    let db = ampere::store::Store::open(&setup.db).unwrap();
    for r in db
        .records_of(&[ampere::addr::parse_net(OFFICE).unwrap()])
        .unwrap()
    {
        assert_eq!(r.ban.evidence, ampere::score::Evidence::Weak);
        assert!(
            r.ban.expires.is_some_and(|e| e - r.ban.since <= 300),
            "{:?}",
            r.ban
        );
        assert_eq!(r.ban.count, 0, "counted toward permanent_after");
    }
    // Named loudly: the log, status, why.
    assert!(
        log.contains(&format!(
            "account `1002` fails from {OFFICE}, where it logged in before"
        )),
        "{log}"
    );
    assert!(
        status.contains(&format!(
            "stale:    account `1002` fails from {OFFICE}, where it logged in before"
        )),
        "{status}"
    );
    assert!(
        why.contains("stale password: account `1002` failed"),
        "{why}"
    );
    assert!(why.contains("known: logged in as `1002`"), "{why}");
    println!(
        "measured: an hour of a stale password every 30 s beside a registered phone, with a restart of Ampere and of Asterisk: {} ban(s) of 5 min, none for good",
        bans.len()
    );
}

#[test]
fn the_contact_limit_bans_nobody_and_status_names_it() {
    let server = AmiServer::start(vec![
        Plan::Replay {
            file: "pjsip-max-contacts.ami".into(),
            speed: 0.0,
        },
        Plan::Custom(Vec::new()),
    ]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(20, "the capture played", || {
        server.finished() >= 1 && server.accepted() > 1
    });
    wait_for(10, "the refusals counted", || {
        setup.status_key("registrar_refusals") == Some(5)
    });
    let (_, status, _) = setup.run(&["status"], "");
    assert_eq!(d.stop(), 0);
    assert!(setup.stored().is_empty(), "{}", setup.log());
    assert!(
        status.contains("registrar: 5 refusal(s) right after a success, not counted (latest: account `1001` from 10.99.1.2: registrar_attempt_exceeds_maximum_configured_contacts"),
        "{status}"
    );
}
