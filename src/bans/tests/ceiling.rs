//! `max_bans`: the temporary ban closest to its end makes room; permanent bans never do.

use super::*;

/// Bans the daemon made as separate batches, `t` seconds apart, from `T0`.
fn one_by_one(r: &mut Rig, addrs: &[&str], t: i64) {
    for (i, a) in addrs.iter().enumerate() {
        assert_eq!(r.flush(&[a], T0 + t * i as i64), [*a]);
    }
}

#[test]
fn at_the_ceiling_the_ban_closest_to_its_end_makes_room() {
    // Escalation makes a repeat offender's ban longer: it outlives a newer first offense.
    let mut r = rig("max_bans = 3\nbantime = 100\n");
    one_by_one(&mut r, &["192.0.2.9"], 0);
    r.timers(T0 + 100);
    assert!(r.held().is_empty());
    one_by_one(&mut r, &["192.0.2.9", "192.0.2.1", "192.0.2.2"], 1);
    // 192.0.2.9 ends at T0+100+200, .1 at T0+101+100, .2 at T0+102+100.
    let cfg = r.cfg.clone();
    r.bans.queue(ban_at("192.0.2.3", T0 + 103));
    r.bans.queue(ban_at("192.0.2.4", T0 + 103));
    let f = r.bans.flush(&cfg, || T0 + 103);
    let lifted: Vec<String> = f.lifted.iter().map(|(n, _)| net_text(n)).collect();
    assert_eq!(lifted, ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(f.banned.len(), 2);
    assert_eq!(r.held(), ["192.0.2.3", "192.0.2.4", "192.0.2.9"]);
    assert_eq!(r.stored(), r.held());
    assert_eq!(r.bans.counters.made_room, 2);
    // A ban that is active already needs no room.
    assert!(r.flush(&["192.0.2.3"], T0 + 104).is_empty());
    assert_eq!(r.bans.counters.made_room, 2);
}

#[test]
fn permanent_bans_never_make_room_and_new_ones_are_refused() {
    let mut r = rig("max_bans = 2\n");
    one_by_one(&mut r, &["192.0.2.1", "192.0.2.2"], 1);
    assert!(r.flush(&["192.0.2.3", "192.0.2.4"], T0 + 5).is_empty());
    assert_eq!(r.held(), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(r.stored(), r.held());
    assert_eq!(r.bans.counters.refused, 2);
    // Mixed: one temporary ban among permanent ones makes room for one of two.
    let mut r = rig("max_bans = 3\nbantime = 100\n");
    r.bans
        .store
        .record(&[ban_at("192.0.2.1", T0)], &|_, _| None)
        .unwrap();
    r.bans
        .store
        .record(&[ban_at("192.0.2.2", T0)], &|_, _| None)
        .unwrap();
    one_by_one(&mut r, &["192.0.2.3"], 1);
    assert_eq!(r.flush(&["192.0.2.4", "192.0.2.5"], T0 + 5), ["192.0.2.4"]);
    assert_eq!(r.stored(), ["192.0.2.1", "192.0.2.2", "192.0.2.4"]);
    assert_eq!((r.bans.counters.made_room, r.bans.counters.refused), (1, 1));
}

#[test]
fn a_flood_of_distinct_bans_stays_at_the_ceiling() {
    let mut r = rig("max_bans = 100\nbantime = 3600\n");
    for round in 0..20u32 {
        let addrs: Vec<String> = (0..50u32)
            .map(|i| {
                let n = round * 50 + i;
                format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
            })
            .collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        assert_eq!(r.flush(&refs, T0 + i64::from(round)).len(), 50);
        assert!(r.held().len() <= 100);
    }
    assert_eq!(r.held().len(), 100);
    assert_eq!(r.stored(), r.held());
    assert_eq!(r.bans.counters.made_room, 900);
}

#[test]
fn an_admins_bans_never_take_the_daemons_room() {
    // Found by the latency benchmark: after `ampere -a` of 100,000 addresses (permanent,
    // manual) every ban the daemon made was refused at the default ceiling.
    let mut r = rig("max_bans = 2\n");
    let manual: Vec<BanRequest> = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .map(|a| BanRequest {
            origin: Origin::Manual,
            ..ban_at(a, T0)
        })
        .collect();
    r.bans.store.record(&manual, &|_, _| None).unwrap();
    assert_eq!(
        r.flush(&["192.0.2.1", "192.0.2.2"], T0 + 1),
        ["192.0.2.1", "192.0.2.2"]
    );
    assert_eq!(r.bans.counters.refused, 0);
    // The daemon's own bans still stop at the ceiling.
    assert!(r.flush(&["192.0.2.3"], T0 + 2).is_empty());
    assert_eq!(r.bans.counters.refused, 1);
    assert_eq!(r.stored().len(), 5);
}
