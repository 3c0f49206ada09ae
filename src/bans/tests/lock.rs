//! The kernel lock an admin's `-a`/`-d` holds, and re-applying a ban the kernel let through.

use std::time::Instant;

use super::*;
use crate::sys::FileLock;

/// Takes the kernel lock as an admin's `-a`/`-d` does, until dropped.
fn admin_lock(r: &Rig) -> FileLock {
    let path = format!("{}.lock", r.cfg.db.display());
    FileLock::take(std::path::Path::new(&path), false)
        .unwrap()
        .expect("nobody else holds the lock")
}

/// As if `LOCK_RETRY` had passed.
fn lock_retry_now(r: &mut Rig) {
    r.bans.lock_wait = None;
}

#[test]
fn a_ban_made_while_an_admin_holds_the_lock_is_in_the_kernel_at_once_and_outlives_a_rebuild() {
    let mut r = rig("");
    let admin = admin_lock(&r);
    assert_eq!(r.flush(&["192.0.2.1"], T0), ["192.0.2.1"]);
    assert_eq!(r.held(), ["192.0.2.1"], "the ban waited for the lock");
    assert!(
        r.stored().is_empty(),
        "the database was written under the admin's lock"
    );
    // The admin's `-d` rebuilds the set from a listing made before that ban.
    r.kernel.0.borrow_mut().held.clear();
    lock_retry_now(&mut r);
    r.timers(T0 + 1);
    assert!(r.stored().is_empty());
    // Waiting for the lock does not spin.
    assert!(r.bans.next_timer_by(|| (T0 + 1) * 1000).unwrap() > Instant::now());
    drop(admin);
    lock_retry_now(&mut r);
    r.timers(T0 + 1);
    assert_eq!(r.stored(), ["192.0.2.1"]);
    assert_eq!(
        r.held(),
        ["192.0.2.1"],
        "the rebuild's loss was not made good"
    );
    assert_eq!(r.bans.unstored(), 0);
}

#[test]
fn expiry_and_the_audit_wait_for_an_admins_lock() {
    let mut r = rig("bantime = 10\naudit_interval = 1\n");
    r.flush(&["192.0.2.1"], T0);
    r.bans.set_audit_interval(std::time::Duration::ZERO);
    let admin = admin_lock(&r);
    assert!(
        r.timers(T0 + 11).is_empty(),
        "lifted under the admin's lock"
    );
    assert_eq!(r.bans.counters.audits, 0, "audited under the admin's lock");
    assert_eq!(r.held(), ["192.0.2.1"]);
    drop(admin);
    lock_retry_now(&mut r);
    assert_eq!(r.timers(T0 + 11).len(), 1);
    assert!(r.held().is_empty());
    assert_eq!(r.bans.counters.audits, 1);
}

#[test]
fn an_event_from_a_banned_address_puts_its_ban_back_but_not_for_every_event() {
    let mut r = rig("");
    r.flush(&["192.0.2.1"], T0);
    r.calls();
    // (That the events Asterisk had queued at the ban cost nothing is in
    // `an_active_ban_is_not_applied_twice`, without a clock.)
    // Someone flushes the chain; an event a while later is proof of it.
    r.kernel.0.borrow_mut().held.clear();
    r.bans.reapplied.clear();
    assert!(r.flush(&["192.0.2.1"], T0 + 5).is_empty(), "a second ban");
    assert_eq!(r.held(), ["192.0.2.1"], "the ban was not put back");
    assert_eq!(r.calls(), ["ensure 192.0.2.1", "ban 192.0.2.1"]);
    // Flushed again at once: the next events within REAPPLY_EVERY cost no command each
    // (however slow the machine: the last re-apply counts as an hour from now).
    r.kernel.0.borrow_mut().held.clear();
    r.bans.reapplied.insert(
        parse_net("192.0.2.1").unwrap(),
        Instant::now() + std::time::Duration::from_secs(3600),
    );
    for _ in 0..100 {
        r.flush(&["192.0.2.1"], T0 + 5);
    }
    assert!(r.calls().is_empty());
    assert_eq!(r.stored(), ["192.0.2.1"]);
}
