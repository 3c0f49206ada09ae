//! Expiry at scale: bans that end together are lifted a bounded part per turn.

use super::*;

/// A time the wall clock is set at (expiry waits for a set clock).
const T: i64 = 1_800_000_000;

#[test]
fn bans_that_end_together_are_lifted_a_part_a_turn() {
    let mut r = rig("bantime = 60\nmax_bans = 0\n");
    let n = super::super::expiry::EXPIRE_PER_TURN * 2 + 7;
    let requests: Vec<BanRequest> = (0..n)
        .map(|i| {
            ban_at(
                &format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                T,
            )
        })
        .collect();
    let cfg = r.cfg.clone();
    for q in requests {
        r.bans.queue(q);
    }
    assert_eq!(r.bans.flush(&cfg, || T).banned.len(), n);
    // All end together: each turn lifts at most EXPIRE_PER_TURN, the rest at the next.
    let mut turns = Vec::new();
    loop {
        let lifted = r.timers(T + 3_600).len();
        if lifted == 0 {
            break;
        }
        turns.push(lifted);
    }
    let part = super::super::expiry::EXPIRE_PER_TURN;
    assert_eq!(turns, [part, part, 7]);
    assert!(r.stored().is_empty());
    assert!(r.held().is_empty());
}
