use super::*;
use crate::ban::{BanRequest, Lifetime, Origin};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// What the old `ban_many` answered per entry: the new ban's count and expiry, or None when
/// it was active already; the assertions below are written against that shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Banned {
    count: i64,
    expires: Option<i64>,
}

fn nb(addr: &str, now: i64) -> BanRequest {
    BanRequest {
        account: "1001".into(),
        penalty: 15,
        ..BanRequest::new(
            crate::addr::parse_net(addr).unwrap(),
            Origin::Daemon,
            "ChallengeResponseFailed",
            now,
            Lifetime::Escalating,
        )
    }
}

fn forever(_: i64) -> Option<i64> {
    None
}

fn record(
    s: &mut Store,
    bans: Vec<BanRequest>,
    expiry: &dyn Fn(i64) -> Option<i64>,
) -> Vec<Option<Banned>> {
    s.record(&bans, &|_, count| expiry(count))
        .unwrap()
        .into_iter()
        .map(|b| {
            b.map(|b| Banned {
                count: b.count,
                expires: b.expires,
            })
        })
        .collect()
}

fn net(s: &str) -> IpNet {
    crate::addr::parse_net(s).unwrap()
}

fn texts(bans: Vec<Ban>) -> Vec<String> {
    bans.iter().map(|b| addr::net_text(&b.net)).collect()
}

#[test]
fn add_list_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    assert_eq!(
        record(
            &mut s,
            vec![nb("192.0.2.1", 100), nb("2001:db8::1", 101)],
            &forever
        ),
        vec![
            Some(Banned {
                count: 1,
                expires: None
            });
            2
        ]
    );
    // Already active: not banned twice, count unchanged.
    assert_eq!(
        record(&mut s, vec![nb("192.0.2.1", 200)], &forever),
        vec![None]
    );
    let all = s.active().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(addr::net_text(&all[0].net), "192.0.2.1");
    assert_eq!((all[0].first, all[0].since, all[0].count), (100, 100, 1));
    assert_eq!(all[0].reason, "ChallengeResponseFailed");
    assert_eq!(all[0].account, "1001");
    assert_eq!(all[0].expires, None);
    assert_eq!((all[0].penalty, all[0].origin), (15, Origin::Daemon));
    assert!(s.is_banned(&net("2001:db8::1")).unwrap());
    assert_eq!(
        s.remove_many(&[net("192.0.2.1"), net("198.51.100.9")])
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(s.active().unwrap().len(), 1);
    assert!(!s.is_banned(&net("192.0.2.1")).unwrap());
}

#[test]
fn hostile_text_is_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    let evil = "x'); DROP TABLE bans; --\u{0}\n$(id)";
    let mut b = nb("192.0.2.5", 1);
    b.account = evil.to_string();
    record(&mut s, vec![b], &forever);
    assert_eq!(s.active().unwrap()[0].account, evil);
}

#[test]
fn an_unparsable_row_is_left_out_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    record(&mut s, vec![nb("192.0.2.5", 1)], &forever);
    s.db.exec("INSERT INTO bans(addr, first_ban, last_ban, count, event, account) VALUES('not an address', 1, 1, 1, 'x', '')")
        .unwrap();
    assert_eq!(texts(s.active().unwrap()), ["192.0.2.5"]);
    // A hand edit reaches the tally at the daemon's next start.
    assert_eq!(s.recount().unwrap(), 1);
    assert_eq!(
        s.active_count().unwrap(),
        2,
        "the row itself stays for the admin"
    );
}

#[test]
fn schema_version_is_set_and_reopen_works() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    {
        let mut s = Store::open(&p).unwrap();
        record(&mut s, vec![nb("192.0.2.1", 1)], &forever);
        assert_eq!(
            s.db.query_i64("PRAGMA user_version").unwrap(),
            SCHEMA_VERSION
        );
        assert_eq!(
            s.db.query_i64("SELECT journal_mode = 'wal' FROM pragma_journal_mode")
                .unwrap(),
            1
        );
    }
    let s = Store::open(&p).unwrap();
    assert_eq!(s.active().unwrap().len(), 1);
}

#[test]
fn a_version_1_database_is_migrated_with_its_bans() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    {
        let db = Db::open(&p, 1000).unwrap();
        db.exec(MIGRATIONS[0]).unwrap();
        db.exec("PRAGMA user_version = 1").unwrap();
        db.exec("INSERT INTO bans(addr, first_ban, last_ban, count, event, account, expires) VALUES('192.0.2.1', 5, 6, 2, 'manual', '', NULL), ('2001:db8::/48', 7, 7, 1, 'FailedACL', 'x', 99)")
            .unwrap();
    }
    let s = Store::open(&p).unwrap();
    let all = s.active().unwrap();
    assert_eq!(texts(all.clone()), ["192.0.2.1", "2001:db8::/48"]);
    assert_eq!(
        (all[0].origin, all[0].count, all[0].first),
        (Origin::Manual, 2, 5)
    );
    assert_eq!((all[1].origin, all[1].expires), (Origin::Daemon, Some(99)));
    // Bans from before evidence were all judged as strong.
    assert!(all.iter().all(|b| b.evidence == Evidence::Strong));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    Store::open(&p)
        .unwrap()
        .db
        .exec("PRAGMA user_version = 99")
        .unwrap();
    let e = Store::open(&p).err().unwrap();
    assert!(e.to_string().contains("newer"), "{e}");
    assert_eq!(e.kind, ErrorKind::Schema);
}

#[test]
fn errors_carry_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(&dir.path().join("no/such/dir/a.db"))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::CantOpen, "{e}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x55u8; 8192]).unwrap();
    let e = Store::open(&junk).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
}

#[test]
fn concurrent_writer_from_second_connection() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    let mut a = Store::open(&p).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let p2 = p.clone();
    // A second connection holds the write lock for a while; `a` must wait (busy
    // timeout), not fail.
    let t = std::thread::spawn(move || {
        let mut b = Store::open(&p2).unwrap();
        b.db.exec("BEGIN IMMEDIATE").unwrap();
        b.db.exec("INSERT INTO bans(addr, first_ban, last_ban, count, event, account) VALUES('192.0.2.9', 1, 1, 1, 'manual', '')")
            .unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        b.db.exec("COMMIT").unwrap();
        record(&mut b, vec![nb("192.0.2.10", 2)], &forever);
    });
    locked_rx.recv().unwrap();
    assert!(record(&mut a, vec![nb("192.0.2.11", 3)], &forever)[0].is_some());
    t.join().unwrap();
    assert_eq!(
        texts(a.active().unwrap()),
        vec!["192.0.2.9", "192.0.2.10", "192.0.2.11"]
    );
}

/// Run as a child by `sigkill_mid_transaction_loses_nothing_committed`: commits two bans,
/// then opens a transaction with a third and waits to be killed.
#[test]
#[ignore = "helper process for sigkill_mid_transaction_loses_nothing_committed"]
fn child_writer_then_hang() {
    let Ok(path) = std::env::var("AMPERE_STORE_CHILD_DB") else {
        return;
    };
    let mut s = Store::open(Path::new(&path)).unwrap();
    record(
        &mut s,
        vec![nb("192.0.2.1", 1), nb("192.0.2.2", 2)],
        &forever,
    );
    s.db.exec("BEGIN IMMEDIATE").unwrap();
    for i in 0..500 {
        let a = format!("198.51.100.{}", i % 250);
        s.db.exec(&format!("INSERT OR IGNORE INTO bans(addr, first_ban, last_ban, count, event, account) VALUES('{a}', 3, 3, 1, 'x', '')"))
            .unwrap();
    }
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn sigkill_mid_transaction_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    // Under qemu-user (cross/build.sh TRIPLE test) the child needs the emulator too.
    let runner = std::env::var("AMPERE_TEST_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match runner.next() {
        Some(emu) => {
            let mut c = Command::new(emu);
            c.args(runner).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = cmd
        .args([
            "--exact",
            "store::tests::child_writer_then_hang",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AMPERE_STORE_CHILD_DB", &p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child died early");
        if line.trim_end().ends_with("ready") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-transaction
    child.wait().unwrap();
    let mut s = Store::open(&p).unwrap();
    assert_eq!(texts(s.active().unwrap()), vec!["192.0.2.1", "192.0.2.2"]);
    // The database is fully usable after the crash.
    assert!(record(&mut s, vec![nb("192.0.2.3", 4)], &forever)[0].is_some());
}

#[test]
fn expiry_and_escalation_with_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    let cfg = crate::config::parse(
        b"bantime = 60\nbantime_factor = 2\npermanent_after = 4\n",
        "t",
    )
    .unwrap()
    .config;
    let mut now = 1_000_000;
    let a = "203.0.113.2";
    let ban_at =
        |s: &mut Store, now: i64| record(s, vec![nb(a, now)], &|n| cfg.ban_expiry(now, n))[0];
    assert_eq!(
        ban_at(&mut s, now),
        Some(Banned {
            count: 1,
            expires: Some(now + 60)
        })
    );
    assert_eq!(s.next_expiry().unwrap(), Some(now + 60));
    assert!(s.expire_due(now + 59, usize::MAX).unwrap().is_empty());
    assert_eq!(s.expire_due(now + 60, usize::MAX).unwrap(), vec![net(a)]);
    assert!(!s.is_banned(&net(a)).unwrap());
    assert_eq!(s.next_expiry().unwrap(), None);
    // The count is remembered: each repeat doubles, the 4th is permanent.
    now += 100;
    assert_eq!(
        ban_at(&mut s, now),
        Some(Banned {
            count: 2,
            expires: Some(now + 120)
        })
    );
    assert_eq!(s.expire_due(now + 120, usize::MAX).unwrap(), vec![net(a)]);
    now += 200;
    assert_eq!(
        ban_at(&mut s, now),
        Some(Banned {
            count: 3,
            expires: Some(now + 240)
        })
    );
    assert_eq!(s.expire_due(now + 240, usize::MAX).unwrap(), vec![net(a)]);
    now += 300;
    assert_eq!(
        ban_at(&mut s, now),
        Some(Banned {
            count: 4,
            expires: None
        })
    );
    assert!(s.expire_due(i64::MAX, usize::MAX).unwrap().is_empty());
    let b = &s.active().unwrap()[0];
    assert_eq!(
        (b.count, b.expires, b.first, b.since),
        (4, None, 1_000_000, now)
    );
    assert_eq!(s.active_count().unwrap(), 1);
}

#[test]
fn connections_opening_a_new_database_at_once_all_succeed() {
    // The daemon's start and an admin's `ampere -a` may both find a new file: each must
    // see the schema version under the write lock, or the second runs a step again.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (p, barrier) = (p.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&p).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

#[test]
fn known_hosts_are_kept_bounded_and_forgotten() {
    use crate::facts::Source;
    use crate::known::Learned;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let row = |a: &str, acct: &str, source, last| Learned {
        addr: a.parse().unwrap(),
        account: crate::account::Name::new(acct.as_bytes()),
        source,
        last,
    };
    s.record_known(
        &[
            row("10.99.1.2", "1001", Source::Contact, 100),
            row("10.99.1.2", "1002", Source::Login, 200),
            row("2001:db8::2", "1001", Source::Sip, 300),
        ],
        10,
    )
    .unwrap();
    // Seen again: the later time and the better proof stay, the first time too.
    s.record_known(&[row("10.99.1.2", "1001", Source::Login, 400)], 10)
        .unwrap();
    s.record_known(&[row("10.99.1.2", "1001", Source::Contact, 350)], 10)
        .unwrap();
    let rows = s.known_since(0, 10).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], row("10.99.1.2", "1001", Source::Login, 400));
    assert_eq!(
        s.known_of("10.99.1.2".parse().unwrap()).unwrap()[0],
        ("1001".to_string(), "login".to_string(), 100, 400)
    );
    // Loaded newest first, at most `max`, none older than `since`.
    assert_eq!(s.known_since(250, 10).unwrap().len(), 2);
    assert_eq!(s.known_since(0, 1).unwrap()[0].last, 400);
    // The bound: the longest unseen go first.
    s.record_known(&[row("192.0.2.9", "x", Source::Login, 500)], 3)
        .unwrap();
    assert_eq!(s.known_count().unwrap(), 3);
    assert!(s.known_of("10.99.1.2".parse().unwrap()).unwrap().len() == 1);
    // Forgotten in time.
    assert_eq!(s.forget_known(450).unwrap(), 2);
    assert_eq!(
        s.known_since(0, 10).unwrap(),
        [row("192.0.2.9", "x", Source::Login, 500)]
    );
}

#[test]
fn a_weak_ban_is_temporary_uncounted_and_gives_way_to_a_strong_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    let weak = |now: i64| BanRequest {
        lifetime: Lifetime::Weak { ceiling: 3600 },
        ..nb("198.51.100.50", now)
    };
    // Permanent by the config (`bantime = 0`), an hour by the evidence; not counted.
    let got = record(&mut s, vec![weak(1000)], &forever);
    assert_eq!(
        got,
        [Some(Banned {
            count: 0,
            expires: Some(4600)
        })]
    );
    let b = &s.active().unwrap()[0];
    assert_eq!(b.evidence, Evidence::Weak);
    // A shorter ban by the config wins over the ceiling.
    s.expire_due(5000, usize::MAX).unwrap();
    let got = record(&mut s, vec![weak(5000)], &|_| Some(5600));
    assert_eq!(
        got,
        [Some(Banned {
            count: 0,
            expires: Some(5600)
        })]
    );
    // While it holds, another weak request changes nothing; a strong one takes its place,
    // as the network's first counted ban.
    assert_eq!(record(&mut s, vec![weak(5001)], &forever), [None]);
    let got = record(&mut s, vec![nb("198.51.100.50", 5002)], &forever);
    assert_eq!(
        got,
        [Some(Banned {
            count: 1,
            expires: None
        })]
    );
    assert_eq!(s.active().unwrap()[0].evidence, Evidence::Strong);
    // A strong ban is never replaced by a weak one.
    assert_eq!(record(&mut s, vec![weak(5003)], &forever), [None]);
}

#[test]
fn a_prune_keeps_active_bans_and_the_members_of_an_active_network_ban() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("a.db")).unwrap();
    let now = 1_000_000;
    let members = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let reqs = members.iter().map(|a| nb(a, now)).collect();
    record(&mut s, reqs, &|_| Some(now + 60));
    record(&mut s, vec![nb("198.51.100.0/24", now)], &forever);
    let folded = members.map(net);
    s.fold_into(&folded, &net("198.51.100.0/24"), None).unwrap();
    for (i, a) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        record(&mut s, vec![nb(a, now + i as i64)], &|_| Some(now + 60));
    }
    record(&mut s, vec![nb("192.0.2.1", now)], &forever);
    s.expire_due(now + 100, usize::MAX).unwrap();
    // Beyond max 1 (and all before `before`): the strays go oldest first; the folded
    // members and the active bans stay.
    let p = s.prune(1, 0, 1000).unwrap();
    assert_eq!(
        p,
        Pruned {
            forgotten: 2,
            more: false
        }
    );
    assert_eq!(s.records_of(&[net("203.0.113.3")]).unwrap().len(), 1);
    assert_eq!(s.records_of(&folded).unwrap().len(), 3);
    // A cap of 1 leaves more; time forgets the rest; the network lifted frees its members.
    let p = s.prune(1, now + 10, 1).unwrap();
    assert_eq!(
        p,
        Pruned {
            forgotten: 1,
            more: true
        }
    );
    s.remove_many(&[net("198.51.100.0/24")]).unwrap();
    let p = s.prune(1000, now + 10, 1000).unwrap();
    assert_eq!(
        p,
        Pruned {
            forgotten: 3,
            more: false
        }
    );
    assert_eq!(texts(s.active().unwrap()), ["192.0.2.1"]);
    assert_eq!(s.inactive_count().unwrap(), 0);
}
