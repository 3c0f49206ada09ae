use super::*;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

#[test]
fn set_get_remove() {
    let mut t = PenaltyTable::new(100);
    let a: IpAddr = "203.0.113.2".parse().unwrap();
    let b: IpAddr = "2001:db8:99::2".parse().unwrap();
    t.set(a, 4, 10);
    t.set(b, 5, 11);
    t.set(a, 9, 12);
    assert_eq!(t.get(a), Some((9, 12)));
    assert_eq!(t.get(b), Some((5, 11)));
    assert_eq!(t.len(), 2);
    assert!(t.remove(a));
    assert!(!t.remove(a));
    assert_eq!(t.get(a), None);
    assert_eq!(t.get(b), Some((5, 11)));
    // IPv4 and its IPv4-mapped IPv6 form are one host.
    let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 2).to_ipv6_mapped());
    t.set(mapped, 1, 13);
    assert_eq!(t.get(a), Some((1, 13)));
    assert_eq!(t.len(), 2);
}

#[test]
fn a_host_keeps_every_field_and_touch_changes_only_recency() {
    let mut t = PenaltyTable::new(16);
    let a: IpAddr = "203.0.113.2".parse().unwrap();
    let h = Host {
        penalty: 9,
        scored: 40,
        acct: 7,
        acct_penalty: 5,
        ok_accts: 3,
        events: 2,
        sess: 7,
        sess_penalty: 4,
        strong: 6,
    };
    t.put(a, h, 41);
    assert_eq!(t.host(a), Some(h));
    t.touch(a, 99);
    assert_eq!(t.host(a), Some(h));
    assert_eq!(t.get(a), Some((9, 99)));
    assert_eq!(std::mem::size_of::<Slot>(), 40);
    assert_eq!(std::mem::size_of::<Option<Host>>(), 40);
}

#[test]
fn every_account_that_logged_in_is_remembered() {
    let mut h = Host::default();
    let accts: Vec<u32> = (1..=3u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
    assert!(!h.ever_logged_in());
    for &a in &accts {
        h.note_login(a);
    }
    assert!(accts.iter().all(|&a| h.logged_in(a)));
    assert!(!h.logged_in(0));
    // Few others pass for logged in: the filter is sparse with three accounts.
    let false_positives = (1000..11_000u32)
        .filter(|i| h.logged_in(i.wrapping_mul(0x85eb_ca6b)))
        .count();
    assert!(false_positives < 600, "{false_positives} of 10000");
}

#[test]
fn matches_a_model_under_random_churn() {
    // Without eviction pressure the table must behave exactly like a HashMap, whatever
    // the order of inserts and backward-shift deletions.
    let mut t = PenaltyTable::new(512);
    let mut model = HashMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for step in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = v4((x % 600) as u32);
        if x % 3 == 0 {
            assert_eq!(t.remove(ip), model.remove(&ip).is_some());
        } else if model.len() < 512 || model.contains_key(&ip) {
            t.set(ip, (x >> 32) as u32, step);
            model.insert(ip, ((x >> 32) as u32, step));
        }
        assert_eq!(t.len(), model.len());
    }
    for (ip, v) in &model {
        assert_eq!(t.get(*ip), Some(*v));
    }
}

#[test]
fn capacity_never_exceeded_and_old_hosts_evicted_first() {
    let mut t = PenaltyTable::new(1000);
    let slots_before = t.bytes();
    for i in 0..1000u32 {
        t.set(v4(i), 1, u64::from(i));
    }
    assert_eq!(t.len(), 1000);
    // A recently active host with a high penalty survives a wave of newcomers half the
    // table's size: the hosts evicted are the oldest ones.
    let hot: IpAddr = "198.51.100.1".parse().unwrap();
    t.set(hot, 14, 5000);
    for i in 0..500u32 {
        t.set(v4(1_000_000 + i), 1, 5001 + u64::from(i % 10));
        assert!(t.len() <= t.capacity());
    }
    assert_eq!(t.len(), t.capacity());
    assert_eq!(t.get(hot), Some((14, 5000)));
    assert_eq!(t.evictions(), 501);
    let newcomers_kept = (0..500u32)
        .filter(|i| t.get(v4(1_000_000 + i)).is_some())
        .count();
    assert!(newcomers_kept >= 490, "{newcomers_kept}");
    assert_eq!(t.bytes(), slots_before);
}

#[test]
fn a_patient_guesser_and_a_logged_in_phone_outlive_any_amount_of_one_off_noise() {
    let mut t = PenaltyTable::new(4096);
    let guesser: IpAddr = "198.51.100.9".parse().unwrap();
    let phone: IpAddr = "10.99.1.2".parse().unwrap();
    t.put(
        phone,
        Host {
            ok_accts: 6,
            ..Host::default()
        },
        0,
    );
    let mut next = 0x0b00_0000u32;
    for minute in 0..60u64 {
        // 6,000 one-off events a minute from addresses never seen again...
        for _ in 0..6000 {
            t.set(v4(next), 1, minute * 60);
            next += 1;
        }
        // ...and one more guess a minute (a challenge and a wrong answer: 5 points).
        let p = t.host(guesser).map_or(0, |h| h.penalty);
        t.set(guesser, p + 5, minute * 60 + 59);
        assert!(t.len() <= t.capacity());
    }
    assert_eq!(t.get(guesser).map(|(p, _)| p), Some(300));
    assert!(t.host(phone).is_some_and(|h| h.ok_accts == 6));
}

#[test]
fn one_million_distinct_addresses_keep_the_table_at_its_size() {
    let mut t = PenaltyTable::new(4096);
    let bytes = t.bytes();
    for i in 0..1_000_000u32 {
        let ip = if i % 2 == 0 {
            v4(0x0b00_0000 + i)
        } else {
            IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)))
        };
        t.set(ip, 3, u64::from(i / 100));
        assert!(t.len() <= 4096);
    }
    assert_eq!(t.len(), 4096);
    assert_eq!(t.bytes(), bytes);
    // The newest hosts are the ones kept.
    assert!(t.get(v4(0x0b00_0000 + 999_998)).is_some());
}
