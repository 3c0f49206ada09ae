//! The database deleted just before a stop: the next start finds every ban, in the kernel
//! and in the database. Nothing written since the deletion: the stop (or else the start,
//! which makes a new database) adopts the kernel's bans. A ban written since: the daemon
//! made the database again, and the audit due at once or the stop adopts the rest (the
//! stop's part, which a test from outside cannot time, is `a_stop_before_the_adopting_
//! audit_adopts_at_the_stop` in `src/bans/tests/outage.rs`).

use super::*;

fn remove_db(pbx: &Pbx) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = pbx.setup.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

pub fn deleted_scenario(backend: &str) {
    let pbx = Pbx::new(&format!("backend = {backend}\naudit_interval = 1h\n"));
    let mut d = pbx.setup.spawn();
    pbx.logged_in(1);
    let (code, _, err) = pbx.setup.run(&["-a"], &format!("{ATK4}\n{ATKNET4}\n"));
    assert_eq!(code, 0, "{err}");
    let mut want = BTreeSet::from([ATK4.to_string(), ATKNET4.to_string()]);
    assert_eq!(kernel_bans(backend), want);
    let mut logins = 1;
    for write_between in [false, true] {
        remove_db(&pbx);
        if write_between {
            // An attacker's guesses right after: the daemon makes the database again for
            // its ban, and the stop comes before the audit that would adopt the rest.
            for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", "192.0.2.77")]) {
                pbx.send(&e);
            }
            wait_for(10, "the new ban", || in_kernel(backend, "192.0.2.77"));
            want.insert("192.0.2.77".to_string());
        }
        assert_eq!(d.stop(), 0);
        d = pbx.setup.spawn();
        logins += 1;
        pbx.logged_in(logins);
        assert_eq!(
            kernel_bans(backend),
            want,
            "write between: {write_between}\n{}",
            pbx.setup.log()
        );
        let stored: BTreeSet<String> = pbx.setup.stored().into_iter().collect();
        assert_eq!(stored, want, "write between: {write_between}");
    }
    assert!(pbx.setup.log().contains("adopted"), "{}", pbx.setup.log());
    println!(
        "measured: {backend}: the database deleted before a stop, twice: {} ban(s) in the kernel and the database after each start",
        want.len()
    );
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_deleted() {
    if inside().is_some() {
        deleted_scenario(&backend());
    }
}
