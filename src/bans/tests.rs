//! The bans module with a firewall that records what it is asked and a real SQLite file in a
//! temp dir: no root, no socket, no firewall.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::addr::parse_net;
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::firewall::Entry;
use crate::firewall::{ErrorKind, Result as FwResult};

#[derive(Default)]
struct Kernel {
    /// What the firewall was asked, one line per call.
    calls: Vec<String>,
    /// The networks it holds now.
    held: Vec<IpNet>,
    /// Fail every batch of more than one ban.
    fail_batches: bool,
    /// Fail any ban of these networks.
    refuse: Vec<IpNet>,
    /// The table was deleted: listing fails until `prepare` makes it again.
    gone: bool,
    /// What `faults` reports until the next `restore`.
    faults: Vec<String>,
    /// `ban_many_started` is offered, for the database at this path (`tests/bulk.rs`).
    started: Option<std::path::PathBuf>,
    /// At each start and each finish of a started batch: the active bans stored, and
    /// whether the kernel lock was held.
    at_start: Vec<(i64, bool)>,
    at_finish: Vec<(i64, bool)>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<Kernel>>);

impl Backend for Fake {
    fn prepare(&self) -> FwResult<()> {
        self.0.borrow_mut().gone = false;
        Ok(())
    }
    fn restore(&self, source: &dyn crate::firewall::Source, now: i64) -> FwResult<()> {
        let mut bans = Vec::new();
        source.each(&mut |e| bans.push(e))?;
        let mut k = self.0.borrow_mut();
        let line: Vec<String> = bans
            .iter()
            .map(|b| format!("{}:{:?}", net_text(&b.net), b.timeout(now)))
            .collect();
        k.calls.push(format!("restore {}", line.join(" ")));
        k.held = bans.iter().map(|b| b.net).collect();
        k.faults.clear();
        Ok(())
    }
    fn ban(&self, b: &Entry, now: i64) -> FwResult<()> {
        self.ban_many(std::slice::from_ref(b), now)
    }
    fn ensure(&self, b: &Entry, now: i64) -> FwResult<()> {
        self.0
            .borrow_mut()
            .calls
            .push(format!("ensure {}", net_text(&b.net)));
        if self.0.borrow().held.contains(&b.net) {
            return Ok(());
        }
        self.ban(b, now)
    }
    fn ban_many(&self, bans: &[Entry], _now: i64) -> FwResult<()> {
        let mut k = self.0.borrow_mut();
        let nets: Vec<String> = bans.iter().map(|b| net_text(&b.net)).collect();
        k.calls.push(format!("ban {}", nets.join(" ")));
        if (k.fail_batches && bans.len() > 1) || bans.iter().any(|b| k.refuse.contains(&b.net)) {
            return Err(FwError::new(ErrorKind::Failed, "refused"));
        }
        k.held.extend(bans.iter().map(|b| b.net));
        Ok(())
    }
    fn ban_many_started(&self, bans: &[Entry], now: i64) -> Option<crate::firewall::Started> {
        let db = self.0.borrow().started.clone()?;
        let seen = move || {
            let stored = Store::open_read_only(&db).unwrap().active_count().unwrap();
            let lock = std::path::PathBuf::from(format!("{}.lock", db.display()));
            let locked = crate::sys::FileLock::take(&lock, false).unwrap().is_none();
            (stored, locked)
        };
        self.0.borrow_mut().at_start.push(seen());
        let me = self.clone();
        let bans = bans.to_vec();
        Some(crate::firewall::Started::new(move || {
            me.0.borrow_mut().at_finish.push(seen());
            me.ban_many(&bans, now)
        }))
    }
    fn list(&self) -> FwResult<Vec<IpNet>> {
        let k = self.0.borrow();
        if k.gone {
            return Err(FwError::new(ErrorKind::MissingChain, "no such table"));
        }
        Ok(k.held.clone())
    }
    fn faults(&self) -> FwResult<Vec<String>> {
        Ok(self.0.borrow().faults.clone())
    }
    fn holds(&self, net: &IpNet) -> FwResult<bool> {
        Ok(self.0.borrow().held.contains(net))
    }
    fn limit_sip(&self, _: Option<&crate::firewall::SipLimit>) -> FwResult<()> {
        Ok(())
    }
    fn unban(&self, net: &IpNet) -> FwResult<()> {
        let mut k = self.0.borrow_mut();
        k.calls.push(format!("unban {}", net_text(net)));
        k.held.retain(|n| n != net);
        Ok(())
    }
}

const T0: i64 = 1_800_000_000;

/// The active bans of `store`, as sorted text.
fn active_in(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .active()
        .unwrap()
        .iter()
        .map(|b| net_text(&b.net))
        .collect();
    v.sort();
    v
}

struct Rig {
    _dir: tempfile::TempDir,
    bans: Bans,
    kernel: Fake,
    cfg: Config,
}

fn rig(cfg: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::parse(
        format!("db = {}\n{cfg}", dir.path().join("a.db").display()).as_bytes(),
        "t",
    )
    .unwrap()
    .config;
    let kernel = Fake::default();
    let bans = Bans::open(&cfg, Box::new(kernel.clone()))
        .unwrap()
        .for_daemon();
    Rig {
        _dir: dir,
        bans,
        kernel,
        cfg,
    }
}

/// The daemon's ban of `addr`, decided at `now`.
fn ban_at(addr: &str, now: i64) -> BanRequest {
    BanRequest {
        account: "1001".to_string(),
        penalty: 15,
        ..BanRequest::new(
            parse_net(addr).unwrap(),
            Origin::Daemon,
            "InvalidPassword",
            now,
            Lifetime::Escalating,
        )
    }
}

/// An admin's ban of `addr`.
fn manual(addr: &str, now: i64) -> BanRequest {
    BanRequest::new(
        parse_net(addr).unwrap(),
        Origin::Manual,
        "manual",
        now,
        Lifetime::Permanent,
    )
}

impl Rig {
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.kernel.0.borrow_mut().calls)
    }
    fn held(&self) -> Vec<String> {
        let mut v: Vec<String> = self.kernel.0.borrow().held.iter().map(net_text).collect();
        v.sort();
        v
    }
    fn stored(&self) -> Vec<String> {
        active_in(self.bans.store())
    }
    fn timers(&mut self, now: i64) -> Vec<IpNet> {
        let cfg = self.cfg.clone();
        self.bans
            .timers(&cfg, || now)
            .lifted
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }
    fn audit(&mut self, now: i64) {
        let cfg = self.cfg.clone();
        self.bans.audit(&cfg, now)
    }
    fn flush(&mut self, addrs: &[&str], now: i64) -> Vec<String> {
        for a in addrs {
            self.bans.queue(ban_at(a, now));
        }
        let cfg = self.cfg.clone();
        self.bans
            .flush(&cfg, || now)
            .banned
            .iter()
            .map(|b| net_text(&b.net))
            .collect()
    }
}

#[test]
fn a_burst_is_one_transaction_and_one_firewall_call_per_family() {
    let mut r = rig("");
    let applied = r.flush(&["192.0.2.1", "192.0.2.2", "2001:db8::1"], T0);
    assert_eq!(applied, ["192.0.2.1", "192.0.2.2", "2001:db8::1"]);
    assert_eq!(r.calls(), ["ban 192.0.2.1 192.0.2.2", "ban 2001:db8::1"]);
    assert_eq!(r.stored(), r.held());
    assert_eq!(r.bans.counters.bans, 3);
    assert_eq!(r.bans.pending(), 0);
}

#[test]
fn an_active_ban_is_not_applied_twice() {
    let mut r = rig("");
    r.flush(&["192.0.2.1"], T0);
    r.calls();
    // However slow the machine, .1 counts as just banned (no re-apply yet).
    r.bans.reapplied.insert(
        parse_net("192.0.2.1").unwrap(),
        std::time::Instant::now() + Duration::from_secs(3600),
    );
    // Again, and twice in one batch: nothing reaches the firewall for the known one, one
    // call for the new one (its second event in the batch is no reason to check it).
    assert_eq!(
        r.flush(&["192.0.2.1", "192.0.2.9", "192.0.2.9"], T0 + 1),
        ["192.0.2.9"]
    );
    assert_eq!(r.calls(), ["ban 192.0.2.9"]);
    assert_eq!(r.bans.counters.already_banned, 2);
}

#[test]
fn a_failed_batch_is_retried_ban_by_ban_and_a_refused_ban_stays_recorded() {
    let mut r = rig("");
    {
        let mut k = r.kernel.0.borrow_mut();
        k.fail_batches = true;
        k.refuse = vec![parse_net("192.0.2.2").unwrap()];
    }
    let applied = r.flush(&["192.0.2.1", "192.0.2.2", "192.0.2.3"], T0);
    assert_eq!(applied, ["192.0.2.1", "192.0.2.3"]);
    assert_eq!(
        r.calls(),
        [
            "ban 192.0.2.1 192.0.2.2 192.0.2.3",
            "ban 192.0.2.1",
            "ban 192.0.2.2",
            "ban 192.0.2.3"
        ]
    );
    assert_eq!(r.bans.counters.firewall_errors, 1);
    // The database first: the refused ban is recorded, and the next start puts it back.
    assert_eq!(r.stored(), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    r.kernel.0.borrow_mut().refuse.clear();
    assert_eq!(r.bans.restore(T0 + 5).unwrap(), 3);
    assert_eq!(r.held(), r.stored());
}

#[test]
fn a_family_that_fails_never_makes_the_other_apply_twice() {
    // The IPv6 chain is gone: the IPv4 half of a mixed batch went in and is not retried.
    let mut r = rig("");
    r.kernel.0.borrow_mut().refuse = vec![
        parse_net("2001:db8::1").unwrap(),
        parse_net("2001:db8::2").unwrap(),
    ];
    let applied = r.flush(
        &["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"],
        T0,
    );
    assert_eq!(applied, ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(
        r.calls(),
        [
            "ban 192.0.2.1 192.0.2.2",
            "ban 2001:db8::1 2001:db8::2",
            "ban 2001:db8::1",
            "ban 2001:db8::2"
        ]
    );
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"], "each rule once");
    assert_eq!(r.bans.counters.firewall_errors, 2);
}

#[test]
fn without_a_database_the_firewall_still_bans() {
    let mut r = rig("bantime = 1h\n");
    r.bans.store().refuse_writes();
    let applied = r.flush(&["192.0.2.1", "192.0.2.1", "192.0.2.2"], T0);
    assert_eq!(applied, ["192.0.2.1", "192.0.2.2"], "one rule per address");
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(r.bans.counters.store_errors, 1);
    assert_eq!(r.bans.unstored(), 2, "kept to be written later");
}

#[test]
fn expiry_is_database_first_and_remembers_the_count() {
    let mut r = rig("bantime = 60\nbantime_factor = 2\n");
    r.flush(&["192.0.2.1"], T0);
    r.flush(&["192.0.2.2"], T0 + 30);
    r.calls();
    // The loop wakes for the first expiry, not later.
    let wake = r.bans.next_timer_by(|| (T0 + 10) * 1000).unwrap();
    assert!(
        wake <= Instant::now() + Duration::from_secs(50),
        "wakes at the expiry"
    );
    assert!(r.timers(T0 + 59).is_empty());
    assert_eq!(r.timers(T0 + 60), [parse_net("192.0.2.1").unwrap()]);
    assert_eq!(r.calls(), ["unban 192.0.2.1"]);
    assert_eq!(r.stored(), ["192.0.2.2"]);
    assert_eq!(r.held(), ["192.0.2.2"]);
    assert_eq!(r.bans.counters.unbans, 1);
    // Banned again: the second ban lasts twice as long.
    let b = {
        r.bans.queue(ban_at("192.0.2.1", T0 + 100));
        let cfg = r.cfg.clone();
        r.bans.flush(&cfg, || T0 + 100).banned.remove(0)
    };
    assert_eq!((b.count, b.expires), (2, Some(T0 + 100 + 120)));
}

#[test]
fn restore_lifts_what_ended_while_down_and_restores_the_rest_with_remaining_time() {
    let mut r = rig("bantime = 100\n");
    r.flush(&["192.0.2.1"], T0);
    r.flush(&["192.0.2.2"], T0 + 50);
    r.calls();
    assert_eq!(r.bans.restore(T0 + 120).unwrap(), 1);
    assert_eq!(r.calls(), ["restore 192.0.2.2:Some(30)"]);
    assert_eq!(r.stored(), ["192.0.2.2"]);
}

#[test]
fn a_clock_that_is_not_set_expires_nothing_and_bans_made_meanwhile_are_re_timed() {
    let mut r = rig("bantime = 60\n");
    // Booted without a real-time clock: 1970 plus a few minutes.
    let boot = 300;
    r.flush(&["192.0.2.1"], boot);
    assert_eq!(
        r.timers(boot + 3600).len(),
        0,
        "nothing expires by a 1970 clock"
    );
    // A restore at 1970 gives the kernel no timeouts (not decades of them).
    r.flush(&["192.0.2.2"], T0 + 200);
    r.calls();
    r.bans.restore(boot + 10).unwrap();
    assert_eq!(r.calls(), ["restore 192.0.2.1:None 192.0.2.2:None"]);
    // NTP sets the clock: 192.0.2.1 was banned 10 s before, by the monotonic clock.
    let set = T0 + 100;
    r.bans.clock_was_set(set - (boot + 10));
    let b = r
        .bans
        .store()
        .active()
        .unwrap()
        .into_iter()
        .find(|b| b.net == parse_net("192.0.2.1").unwrap())
        .unwrap();
    assert_eq!((b.since, b.expires), (set - 10, Some(set + 50)));
    assert!(r.timers(set + 49).is_empty());
    assert_eq!(r.timers(set + 50), [parse_net("192.0.2.1").unwrap()]);
}

#[test]
fn the_wal_is_checkpointed_soon_after_a_write() {
    let mut r = rig("");
    assert!(r.bans.checkpoint_due().is_none());
    r.flush(&["192.0.2.1"], T0);
    let due = r.bans.checkpoint_due().expect("a write wants a checkpoint");
    assert!(due <= Instant::now() + CHECKPOINT_QUIET);
    std::thread::sleep(CHECKPOINT_QUIET);
    r.timers(T0);
    assert!(r.bans.checkpoint_due().is_none());
}

#[test]
fn admin_add_and_remove_report_each_address() {
    let mut r = rig("");
    let manual = |a: &str| manual(a, T0);
    r.kernel.0.borrow_mut().refuse = vec![parse_net("198.51.100.0/24").unwrap()];
    let out = r
        .bans
        .add(
            vec![manual("192.0.2.1"), manual("198.51.100.0/24")],
            true,
            &mut |_| {},
        )
        .unwrap()
        .0;
    assert!(
        matches!(out[..], [Outcome::Done, Outcome::Firewall(_)]),
        "{out:?}"
    );
    r.calls();
    let again = r
        .bans
        .add(vec![manual("192.0.2.1")], true, &mut |_| {})
        .unwrap()
        .0;
    assert!(matches!(again[..], [Outcome::Unchanged]), "{again:?}");
    assert_eq!(
        r.calls(),
        ["ensure 192.0.2.1"],
        "an active ban is checked, not applied again"
    );
    let stored = r.bans.store().active().unwrap();
    assert!(stored
        .iter()
        .all(|b| b.expires.is_none() && b.origin == Origin::Manual));
    let out = r
        .bans
        .remove(
            &[
                parse_net("192.0.2.1").unwrap(),
                parse_net("203.0.113.1").unwrap(),
            ],
            Lift::Manual,
            true,
            &mut |_| {},
        )
        .unwrap()
        .0;
    assert!(
        matches!(out[..], [Outcome::Done, Outcome::Unchanged]),
        "{out:?}"
    );
    assert_eq!(
        r.calls(),
        ["unban 192.0.2.1"],
        "nothing to lift for an address not banned"
    );
    assert_eq!(r.held(), Vec::<String>::new());
}

#[test]
fn the_audit_puts_back_what_the_kernel_lost_and_removes_what_nobody_banned() {
    let mut r = rig("");
    r.flush(&["192.0.2.1", "192.0.2.2"], T0);
    {
        // Someone flushed one rule and added another to Ampere's chain.
        let mut k = r.kernel.0.borrow_mut();
        k.held.retain(|n| *n != parse_net("192.0.2.1").unwrap());
        k.held.push(parse_net("198.51.100.66").unwrap());
    }
    r.calls();
    r.audit(T0 + 1);
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(r.calls(), ["ban 192.0.2.1", "unban 198.51.100.66"]);
    let c = r.bans.counters;
    assert_eq!((c.audits, c.repaired, c.strays_removed), (1, 1, 1));
    // Nothing to do the next time.
    r.audit(T0 + 2);
    assert!(r.calls().is_empty());
}

#[test]
fn the_audit_makes_a_deleted_table_again_with_every_ban() {
    let mut r = rig("");
    r.flush(&["192.0.2.1", "2001:db8::1"], T0);
    {
        let mut k = r.kernel.0.borrow_mut();
        k.gone = true;
        k.held.clear();
    }
    r.calls();
    r.audit(T0 + 1);
    assert_eq!(r.calls(), ["restore 192.0.2.1:None 2001:db8::1:None"]);
    assert_eq!(r.held(), ["192.0.2.1", "2001:db8::1"]);
}

#[test]
fn a_failed_firewall_step_is_retried_soon() {
    let mut r = rig("");
    r.bans.set_audit_interval(Duration::from_secs(300));
    r.kernel.0.borrow_mut().refuse = vec![parse_net("192.0.2.1").unwrap()];
    r.flush(&["192.0.2.1"], T0);
    let soon = r.bans.next_timer_by(|| T0 * 1000).unwrap();
    assert!(
        soon <= Instant::now() + RETRY_FIRST,
        "retried within a second, not in 5 minutes"
    );
    r.kernel.0.borrow_mut().refuse.clear();
    std::thread::sleep(RETRY_FIRST);
    r.timers(T0 + 1);
    assert_eq!(r.held(), ["192.0.2.1"]);
}

mod bulk;
mod ceiling;
mod expiry;
mod lock;
mod outage;
mod pulled;
mod subnet;
mod weak;

#[test]
fn rules_unlike_what_ampere_wrote_are_made_again_with_exactly_the_database_s_bans() {
    let mut r = rig("");
    r.flush(&["192.0.2.1", "192.0.2.2"], T0);
    r.calls();
    // The sets are intact but the chain is not (a flushed nft chain, a stray RETURN).
    r.kernel.0.borrow_mut().faults =
        vec!["chain `ampere`: `-A ampere -j RETURN` is not Ampere's".into()];
    r.kernel
        .0
        .borrow_mut()
        .held
        .push(parse_net("192.0.2.9").unwrap());
    r.audit(T0 + 1);
    let calls = r.calls();
    assert_eq!(
        calls.last().unwrap(),
        "restore 192.0.2.1:None 192.0.2.2:None",
        "{calls:?}"
    );
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    assert!(r.bans.counters.repaired >= 1);
    // Intact: the next audit changes nothing.
    r.audit(T0 + 2);
    assert!(r.calls().iter().all(|c| !c.starts_with("restore")));
}
