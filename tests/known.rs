//! No phone is locked out by a restart: what Ampere learns about legitimate hosts (who
//! logged in from where, what Asterisk says is registered) outlives restarts of Ampere
//! (SIGTERM, kill -9), of Asterisk and of the machine. The real binary, the test AMI server
//! over TCP, a real SQLite file.

mod common;

use std::sync::{mpsc, Arc, Mutex};

use common::*;

const PHONE: &str = "10.99.1.2";

/// A PJSIP security event as Asterisk 22 writes it.
fn pjsip(kind: &str, account: &str, session: &str, addr: &str) -> Vec<u8> {
    format!(
        "Event: {kind}\r\nPrivilege: security,all\r\nEventTV: 2026-11-23T17:31:09.742+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: {account}\r\nSessionID: {session}\r\nLocalAddress: IPV4/UDP/192.0.2.2/5060\r\nRemoteAddress: IPV4/UDP/{addr}/43952\r\nChallenge: \r\n\r\n"
    )
    .into_bytes()
}

/// The phone's REGISTER: challenged, then accepted.
fn register(n: u32) -> Vec<u8> {
    let s = format!("reg{n}@phone");
    [
        pjsip("ChallengeSent", "1001", &s, PHONE),
        pjsip("SuccessfulAuth", "1001", &s, PHONE),
    ]
    .concat()
}

/// `n` unauthenticated OPTIONS keepalives, each challenged and never answered.
fn keepalives(from: u32, n: u32) -> Vec<u8> {
    (from..from + n)
        .flat_map(|i| pjsip("ChallengeSent", "1001", &format!("ka{i}@phone"), PHONE))
        .collect()
}

/// Three wrong passwords from `addr` (challenge and wrong answer each).
fn three_guesses(addr: &str) -> Vec<u8> {
    (0..3)
        .flat_map(|i| {
            let s = format!("guess{i}@{addr}");
            [
                pjsip("ChallengeSent", "1001", &s, addr),
                pjsip("ChallengeResponseFailed", "1001", &s, addr),
            ]
            .concat()
        })
        .collect()
}

/// Asterisk's `core restart now`: the Shutdown event; the session ends and Ampere logs in
/// again (to the server's next plan).
const SHUTDOWN: &[u8] =
    b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n";

fn logins(setup: &Setup) -> usize {
    setup.log().matches("logged in to AMI").count()
}

/// Sends 20 keepalives and an attacker's three guesses; waits for the attacker's ban,
/// which comes after the keepalives on the same stream, and checks what was banned.
fn keepalives_then_an_attacker(
    setup: &Setup,
    tx: &mpsc::Sender<Vec<u8>>,
    round: u32,
    attacker: &str,
) {
    tx.send(keepalives(round * 100, 20)).unwrap();
    tx.send(three_guesses(attacker)).unwrap();
    // The database first, the kernel, then the log line: wait for the line.
    let line =
        format!("ban {attacker}: ChallengeResponseFailed from account `1001` (PJSIP), penalty 15");
    wait_for(20, &format!("the ban of {attacker}"), || {
        setup.log().contains(&line)
    });
    let log = setup.log();
    assert!(
        setup.stored().contains(&attacker.to_string()),
        "round {round}: the attacker was not banned at its third guess\n{log}"
    );
    assert!(
        !setup.stored().contains(&PHONE.to_string()) && !log.contains(&format!("ban {PHONE}")),
        "round {round}: the phone was banned\n{log}"
    );
}

fn feed_plans(rx: mpsc::Receiver<Vec<u8>>, n: usize) -> Vec<Plan> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n).map(|_| Plan::Feed(rx.clone())).collect()
}

#[test]
fn a_phone_stays_known_through_restarts_of_ampere_asterisk_and_the_machine() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(feed_plans(rx, 8));
    let setup = Setup::new(Some(server.addr), "");
    let mut d = setup.spawn();
    wait_for(10, "login", || logins(&setup) == 1);
    // The phone registers, then keeps its NAT binding with challenged OPTIONS.
    tx.send(register(0)).unwrap();
    keepalives_then_an_attacker(&setup, &tx, 0, "203.0.113.10");
    // Its login reached the database at once (a crash loses at most a refresh).
    let db = known_rows(&setup);
    assert_eq!(db, 1, "known rows in the database");

    // 1. Ampere stopped (SIGTERM) and started again.
    assert_eq!(d.stop(), 0);
    d = setup.spawn();
    wait_for(10, "login after SIGTERM", || logins(&setup) == 2);
    assert!(setup
        .log()
        .contains("1 known host(s) and account(s) loaded"));
    keepalives_then_an_attacker(&setup, &tx, 1, "203.0.113.11");

    // 2. Ampere killed (a crash, then a respawn).
    d.signal("KILL");
    drop(d);
    d = setup.spawn();
    wait_for(10, "login after kill -9", || logins(&setup) == 3);
    keepalives_then_an_attacker(&setup, &tx, 2, "203.0.113.12");

    // 3. Asterisk restarts; Ampere logs in again.
    tx.send(SHUTDOWN.to_vec()).unwrap();
    wait_for(10, "login after Asterisk's restart", || logins(&setup) == 4);
    keepalives_then_an_attacker(&setup, &tx, 3, "203.0.113.13");

    // 4. The machine: both go, Ampere without a word (power cut), Asterisk too.
    d.signal("KILL");
    drop(d);
    tx.send(SHUTDOWN.to_vec()).unwrap();
    d = setup.spawn();
    wait_for(10, "login after the machine's restart", || {
        logins(&setup) >= 5
    });
    keepalives_then_an_attacker(&setup, &tx, 4, "203.0.113.14");
    assert_eq!(d.stop(), 0);
}

/// Rows of the `known` table, read with the store's own connection.
fn known_rows(setup: &Setup) -> i64 {
    ampere::store::Store::open(&setup.db)
        .unwrap()
        .known_count()
        .unwrap()
}

#[test]
fn a_phone_that_registered_while_ampere_was_away_is_known_from_asterisks_answer() {
    // A fresh database: Ampere never saw the phone log in. At its login Ampere asks
    // Asterisk which contacts are registered; the answer (PJSIPShowContacts, byte-exact
    // from Asterisk 22) names 1001 and 1002 at 10.99.1.2.
    let run = |answer: Option<Vec<u8>>| {
        let (tx, rx) = mpsc::channel();
        let server = AmiServer::start(feed_plans(rx, 2));
        match &answer {
            Some(a) => server.answer("PJSIPShowContacts", a),
            None => server.answer(
                "PJSIPShowContacts",
                b"Response: Error\r\nActionID: {ACTIONID}\r\nMessage: Permission denied\r\n\r\n",
            ),
        }
        let setup = Setup::new(Some(server.addr), "");
        let d = setup.spawn();
        wait_for(10, "login", || logins(&setup) == 1);
        wait_for(10, "the question", || {
            server.received(0).contains("Action: PJSIPShowContacts")
        });
        tx.send(keepalives(0, 20)).unwrap();
        tx.send(three_guesses("203.0.113.20")).unwrap();
        wait_for(20, "the attacker's ban", || {
            setup.stored().contains(&"203.0.113.20".to_string())
        });
        let log = setup.log();
        assert_eq!(d.stop(), 0);
        (setup.stored(), log)
    };
    let (stored, log) = run(Some(capture_answer("pjsip-actions.ami", "1")));
    assert_eq!(stored, ["203.0.113.20"], "{log}");
    // Without the answer (no `write = system`): a warning, and the phone's third keepalive
    // bans it, as before this memory existed: the answer is what kept it.
    let (stored, log) = run(None);
    assert!(stored.contains(&PHONE.to_string()), "{log}");
    assert!(
        log.contains("give Ampere's AMI user `write = system`"),
        "{log}"
    );
}

#[test]
fn a_phone_not_seen_for_the_forgetting_time_is_forgotten_at_start() {
    // The store's time is the data's: rows last seen 29 and 27 days ago (known_forget is
    // 28 days by default), written before the start.
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(feed_plans(rx, 1));
    let setup = Setup::new(Some(server.addr), "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    {
        let mut s = ampere::store::Store::open(&setup.db).unwrap();
        let row = |addr: &str, days: i64| ampere::known::Learned {
            addr: addr.parse().unwrap(),
            account: ampere::account::Name::new(b"1001"),
            source: ampere::facts::Source::Login,
            last: now - days * 86_400,
        };
        s.record_known(&[row(PHONE, 29), row("10.99.1.3", 27)], 100)
            .unwrap();
    }
    let d = setup.spawn();
    wait_for(10, "login", || logins(&setup) == 1);
    assert!(setup
        .log()
        .contains("1 known host(s) and account(s) loaded"));
    assert_eq!(known_rows(&setup), 1);
    // The forgotten one pays for its keepalives again (4, 14, 24: banned); the other not.
    let still = |addr: &str| {
        (0..3)
            .flat_map(|i| pjsip("ChallengeSent", "1001", &format!("k{i}@{addr}"), addr))
            .collect::<Vec<u8>>()
    };
    tx.send(still("10.99.1.3")).unwrap();
    tx.send(still(PHONE)).unwrap();
    wait_for(20, "the forgotten phone's ban", || {
        setup.stored().contains(&PHONE.to_string())
    });
    assert_eq!(setup.stored(), [PHONE]);
    assert_eq!(d.stop(), 0);
}
