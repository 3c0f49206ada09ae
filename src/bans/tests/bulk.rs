//! An admin's `-a` of many: each part's firewall step runs while the next part is stored,
//! and never before its own part is.

use super::super::bulk::STARTED_FROM;
use super::*;

/// `n` admin bans of distinct addresses.
fn many(n: usize) -> Vec<BanRequest> {
    (0..n)
        .map(|i| {
            manual(
                &format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                T0,
            )
        })
        .collect()
}

fn started(r: &Rig) {
    r.kernel.0.borrow_mut().started = Some(r.bans.store().path().into());
}

#[test]
fn a_long_add_stores_the_next_part_while_the_tool_adds_the_last() {
    let mut r = rig("max_bans = 0\n");
    started(&r);
    let n = FW_CHUNK * 2 + 10;
    let (out, changes) = r.bans.add(many(n), true, &mut |_| {}).unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Done)));
    assert_eq!(changes.banned.len(), n);
    let k = r.kernel.0.borrow();
    let (c, n) = (FW_CHUNK as i64, n as i64);
    // Database first: each part is stored when its tool starts, under the kernel lock.
    // (The last part, with nothing to store beside it, is an ordinary batch.)
    assert_eq!(k.at_start, [(c, true), (2 * c, true)]);
    // The next part was stored before the tool's end was waited for, still under the lock.
    assert_eq!(k.at_finish, [(2 * c, true), (n, true)]);
    assert_eq!(k.held.len() as i64, n);
}

#[test]
fn a_started_part_that_fails_is_applied_ban_by_ban() {
    let mut r = rig("max_bans = 0\n");
    started(&r);
    let n = FW_CHUNK + STARTED_FROM;
    let bad = parse_net("10.0.0.5").unwrap();
    {
        let mut k = r.kernel.0.borrow_mut();
        k.fail_batches = true;
        k.refuse.push(bad);
    }
    let (out, changes) = r.bans.add(many(n), true, &mut |_| {}).unwrap();
    assert_eq!(changes.banned.len(), n - 1);
    assert!(matches!(out[5], Outcome::Firewall(_)));
    assert_eq!(
        out.iter().filter(|o| matches!(o, Outcome::Done)).count(),
        n - 1
    );
    let k = r.kernel.0.borrow();
    assert_eq!(k.at_start.len(), 1, "the first part was started");
    assert_eq!(k.held.len(), n - 1);
    assert!(!k.held.contains(&bad));
    // Stored all the same: the audit puts the refused one back when the kernel takes it.
    drop(k);
    assert_eq!(r.bans.store().active_count().unwrap(), n as i64);
}
