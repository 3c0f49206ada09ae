//! A database that refuses writes, is locked or was deleted: bans go on in the kernel.

use std::time::{Duration, Instant};

use super::*;

/// The database at its path, as the next start reads it (not through the daemon's handle,
/// which may point at a deleted file).
fn on_disk(r: &Rig) -> Vec<String> {
    active_in(&Store::open(&r.cfg.db).unwrap())
}

#[test]
fn bans_made_while_the_database_refuses_writes_are_written_when_it_takes_them_again() {
    let mut r = rig("bantime = 1h\nbantime_factor = 2\n");
    // An earlier ban of .2 that ended: the count must still escalate once it is written.
    r.flush(&["192.0.2.2"], T0 - 7200);
    r.timers(T0 - 3600);
    r.bans.store().refuse_writes();
    r.flush(&["192.0.2.1", "192.0.2.2"], T0);
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(r.bans.unstored(), 2);
    // An audit meanwhile neither removes them nor adds them twice.
    r.audit(T0 + 1);
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    // Still refused: they wait, and the retry backs off instead of spinning.
    r.bans.retry_now();
    assert!(r.timers(T0 + 2).is_empty());
    assert!(r.bans.next_timer_by(|| (T0 + 2) * 1000).unwrap() > Instant::now());
    r.bans.store().allow_writes();
    r.bans.retry_now();
    r.timers(T0 + 3);
    assert_eq!(r.bans.unstored(), 0);
    assert_eq!(on_disk(&r), ["192.0.2.1", "192.0.2.2"]);
    let ends: Vec<Option<i64>> = ["192.0.2.1", "192.0.2.2"]
        .iter()
        .map(|a| {
            let all = r.bans.store().active().unwrap();
            all.iter().find(|b| net_text(&b.net) == *a).unwrap().expires
        })
        .collect();
    assert_eq!(
        ends,
        [Some(T0 + 3600), Some(T0 + 7200)],
        "timed from the ban, escalated"
    );
}

#[test]
fn a_ban_that_never_reached_the_database_still_expires() {
    let mut r = rig("bantime = 60\n");
    r.bans.store().refuse_writes();
    r.flush(&["192.0.2.1"], T0);
    let wake = r.bans.next_timer_by(|| (T0 + 10) * 1000).unwrap();
    assert!(wake <= Instant::now() + Duration::from_secs(50));
    assert!(r.timers(T0 + 59).is_empty());
    assert_eq!(r.timers(T0 + 60), [parse_net("192.0.2.1").unwrap()]);
    assert!(r.held().is_empty());
    assert_eq!(r.bans.unstored(), 0);
}

#[test]
fn a_locked_database_does_not_hold_up_a_ban() {
    let mut r = rig("bantime = 1h\n");
    let admin = Store::open(&r.cfg.db).unwrap();
    admin.hold_write_lock();
    let started = Instant::now();
    assert_eq!(r.flush(&["192.0.2.1"], T0), ["192.0.2.1"]);
    // Generous: the product waits 20 ms; 10 s was the old busy timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.bans.unstored(), 1);
    drop(admin);
    r.bans.retry_now();
    r.timers(T0 + 1);
    assert_eq!(on_disk(&r), ["192.0.2.1"]);
}

#[test]
fn a_deleted_database_is_made_again_and_adopts_what_the_kernel_holds() {
    let mut r = rig("bantime = 1h\n");
    r.flush(&["192.0.2.1"], T0);
    std::fs::remove_dir_all(r.cfg.db.parent().unwrap()).unwrap();
    r.flush(&["192.0.2.2"], T0 + 1);
    assert_eq!(
        on_disk(&r),
        ["192.0.2.2"],
        "written at the path, not to the deleted file"
    );
    r.audit(T0 + 2);
    assert_eq!(
        on_disk(&r),
        ["192.0.2.1", "192.0.2.2"],
        "adopted, not removed"
    );
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
}

#[test]
fn a_stop_before_the_adopting_audit_adopts_at_the_stop() {
    let mut r = rig("bantime = 1h\n");
    r.flush(&["192.0.2.1"], T0);
    // Deleted, then a ban made the database again; the stop comes before the next audit.
    std::fs::remove_dir_all(r.cfg.db.parent().unwrap()).unwrap();
    r.flush(&["192.0.2.2"], T0 + 1);
    assert_eq!(on_disk(&r), ["192.0.2.2"]);
    let cfg = r.cfg.clone();
    r.bans.before_stop(&cfg, T0 + 1);
    assert_eq!(
        on_disk(&r),
        ["192.0.2.1", "192.0.2.2"],
        "adopted at the stop"
    );
    // Deleted with nothing written since: the stop makes it again and adopts too.
    std::fs::remove_dir_all(r.cfg.db.parent().unwrap()).unwrap();
    r.bans.before_stop(&cfg, T0 + 2);
    assert_eq!(on_disk(&r), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
}

#[test]
fn a_new_database_adopts_the_bans_the_kernel_holds_at_start() {
    // The database deleted, the daemon stopped a second later, started again: the new, empty
    // database must not flush the kernel's bans away.
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::parse(
        format!("db = {}\n", dir.path().join("new.db").display()).as_bytes(),
        "t",
    )
    .unwrap()
    .config;
    let kernel = Fake::default();
    kernel.0.borrow_mut().held = ["192.0.2.1", "2001:db8::/64"]
        .iter()
        .map(|n| parse_net(n).unwrap())
        .collect();
    let mut bans = Bans::open(&cfg, Box::new(kernel.clone())).unwrap();
    assert_eq!(bans.restore(T0).unwrap(), 2);
    assert_eq!(active_in(bans.store()), ["192.0.2.1", "2001:db8::/64"]);
    let mut held: Vec<String> = kernel.0.borrow().held.iter().map(net_text).collect();
    held.sort();
    assert_eq!(held, ["192.0.2.1", "2001:db8::/64"]);
    // An existing database, even empty, is the truth: the next start flushes strays.
    drop(bans);
    kernel
        .0
        .borrow_mut()
        .held
        .push(parse_net("198.51.100.9").unwrap());
    let mut bans = Bans::open(&cfg, Box::new(kernel.clone())).unwrap();
    assert_eq!(bans.restore(T0 + 1).unwrap(), 2);
    assert_eq!(kernel.0.borrow().held.len(), 2);
}
