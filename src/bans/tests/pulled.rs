//! Decisions from CrowdSec: numbered pulls, deletions that never undo a newer decision, and
//! the end of the bans a whole list no longer holds.

use super::super::pulled::Pulled;
use super::*;

fn decision(addr: &str) -> BanRequest {
    BanRequest {
        service: "CAPI".into(),
        ..BanRequest::new(
            parse_net(addr).unwrap(),
            Origin::Crowdsec,
            "test/scan",
            T0,
            Lifetime::Until(T0 + 3600),
        )
    }
}

/// What a batch did, as counts (the bans themselves are in `changes`).
fn counts(p: &Pulled) -> [usize; 4] {
    [p.banned, p.known, p.over_max, p.lifted]
}

/// A batch of pull number `n`.
fn pull(r: &mut Rig, new: &[&str], deleted: &[&str], n: i64) -> Pulled {
    let mut new: Vec<BanRequest> = new.iter().map(|a| decision(a)).collect();
    let deleted: Vec<IpNet> = deleted.iter().map(|a| parse_net(a).unwrap()).collect();
    r.bans.pulled(&mut new, &deleted, 0, T0, n).unwrap()
}

#[test]
fn a_deletion_ends_only_a_ban_an_earlier_pull_listed() {
    let mut r = rig("");
    assert_eq!(pull(&mut r, &["192.0.2.1"], &[], 1).banned, 1);
    // A later batch of the same answer: its deletion is no newer than the decision.
    assert_eq!(counts(&pull(&mut r, &[], &["192.0.2.1"], 1)), [0; 4]);
    assert_eq!(r.held(), ["192.0.2.1"]);
    assert_eq!(pull(&mut r, &[], &["192.0.2.1"], 2).lifted, 1);
    assert!(r.held().is_empty());
    assert_eq!(r.stored(), r.held());
}

#[test]
fn a_network_deleted_and_new_in_one_batch_stays_without_a_firewall_call() {
    let mut r = rig("");
    pull(&mut r, &["192.0.2.1"], &[], 1);
    r.calls();
    assert_eq!(
        counts(&pull(&mut r, &["192.0.2.1"], &["192.0.2.1"], 2)),
        [0, 1, 0, 0]
    );
    assert!(r.calls().is_empty());
    assert_eq!(r.held(), ["192.0.2.1"]);
}

#[test]
fn after_a_whole_list_only_the_crowdsec_bans_it_did_not_hold_end() {
    let mut r = rig("");
    pull(&mut r, &["192.0.2.1", "192.0.2.2", "192.0.2.3"], &[], 1);
    // Stored before pulls had numbers (schema 5): counts as listed by none.
    r.bans
        .store
        .record(&[decision("192.0.2.4")], &|_, _| None)
        .unwrap();
    r.flush(&["198.51.100.1"], T0);
    // The admin made one permanent: it is the admin's ban now.
    r.bans
        .store
        .make_permanent(&[parse_net("192.0.2.3").unwrap()])
        .unwrap();
    r.audit(T0);
    assert_eq!(r.bans.last_pull().unwrap(), 1);
    // The daemon's own ban coming back from LAPI is known, and stays the daemon's.
    assert_eq!(
        pull(&mut r, &["192.0.2.2", "198.51.100.1"], &[], 2).known,
        2
    );
    r.calls();
    assert_eq!(r.bans.unlisted(2, 250).unwrap().0, 2);
    assert_eq!(r.calls(), ["unban 192.0.2.1", "unban 192.0.2.4"]);
    assert_eq!(r.held(), ["192.0.2.2", "192.0.2.3", "198.51.100.1"]);
    assert_eq!(r.stored(), r.held());
    assert_eq!(r.bans.unlisted(2, 250).unwrap().0, 0);
    assert_eq!(r.bans.last_pull().unwrap(), 2);
}

#[test]
fn the_unlisted_end_a_batch_at_a_time() {
    let mut r = rig("");
    let addrs = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
        "192.0.2.5",
    ];
    pull(&mut r, &addrs, &[], 1);
    let ended: Vec<usize> = (0..4).map(|_| r.bans.unlisted(2, 2).unwrap().0).collect();
    assert_eq!(ended, [2, 2, 1, 0]);
    assert!(r.held().is_empty());
    assert_eq!(r.stored(), r.held());
}

#[test]
fn nothing_is_ended_while_an_admin_holds_the_kernel_lock() {
    let mut r = rig("");
    pull(&mut r, &["192.0.2.1"], &[], 1);
    let path = format!("{}.lock", r.cfg.db.display());
    let admin = crate::sys::FileLock::take(std::path::Path::new(&path), false)
        .unwrap()
        .expect("nobody else holds the lock");
    assert!(r.bans.unlisted(2, 250).is_err());
    drop(admin);
    assert_eq!(r.held(), ["192.0.2.1"]);
    assert_eq!(r.stored(), r.held());
}

#[test]
fn the_daemon_s_own_ban_takes_over_a_crowdsec_ban_and_outlives_its_deletion() {
    // An address CrowdSec banned attacks this PBX: the daemon's judgment takes over the
    // row (it was skipped as banned already, and LAPI's deletion freed the attacker).
    let mut r = rig("");
    assert_eq!(pull(&mut r, &["192.0.2.1"], &[], 1).banned, 1);
    r.bans.queue(ban_at("192.0.2.1", T0 + 10));
    let cfg = r.cfg.clone();
    let changes = r.bans.flush(&cfg, || T0 + 10);
    assert_eq!(changes.banned.len(), 1, "the daemon's ban is made");
    let b = &r.bans.store().active().unwrap()[0];
    assert_eq!((b.origin, b.expires), (Origin::Daemon, None));
    // The kernel holds the daemon's (permanent) ban, once.
    assert_eq!(r.held(), ["192.0.2.1"]);
    // LAPI deletes its decision: the daemon's ban stays.
    assert_eq!(pull(&mut r, &[], &["192.0.2.1"], 2).lifted, 0);
    assert_eq!(r.held(), ["192.0.2.1"]);
    // And a whole list without it ends nothing of the daemon's either.
    let (n, _) = r.bans.unlisted(3, 100).unwrap();
    assert_eq!(n, 0);
    assert_eq!(r.stored(), ["192.0.2.1"]);
}
