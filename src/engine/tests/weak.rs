//! Weak evidence (`score::Evidence`): what a forged UDP packet can make bans one address,
//! for a while, never on one event; strong evidence alone bans as before.

use super::*;

/// An event from `a` for account `acct` with this evidence.
fn ev(
    e: &mut Engine,
    kind: EventKind,
    acct: &str,
    a: IpAddr,
    evidence: Evidence,
    now: u64,
) -> Verdict {
    let mut ev = SecurityEvent::new(kind, b"PJSIP", acct.as_bytes(), a);
    ev.evidence = evidence;
    e.feed(&ev, now)
}

fn weak(e: &mut Engine, kind: EventKind, acct: &str, a: IpAddr, now: u64) -> Verdict {
    ev(e, kind, acct, a, Evidence::Weak, now)
}

fn strong(e: &mut Engine, kind: EventKind, acct: &str, a: IpAddr, now: u64) -> Verdict {
    ev(e, kind, acct, a, Evidence::Strong, now)
}

fn weak_ban(penalty: u32, net: IpNet, events: u32, ceiling: u64, known: bool) -> Verdict {
    Verdict::Ban(Tipped {
        penalty,
        net,
        events,
        weak: Some(WeakBan {
            ceiling,
            known,
            stale: false,
        }),
    })
}

#[test]
fn one_forged_packet_never_bans() {
    // pjsip-forged-source: one REGISTER for an unknown user "from" 198.51.100.60. With
    // ban_unknown_account (the default) strong evidence bans at once; weak never does.
    let mut e = engine("");
    let a = ip("198.51.100.60");
    assert_eq!(
        weak(&mut e, InvalidAccountID, "9999", a, 0),
        Verdict::Scored(5)
    );
    assert_eq!(
        strong(&mut e, InvalidAccountID, "9999", ip("198.51.100.61"), 0),
        strong_ban(15, host("198.51.100.61"), 1)
    );
    // A weight at the limit (the admin's): one weak event reaches it and bans nothing; the
    // next one does, for an hour at most.
    let mut e = engine("weight.FailedACL = 15\n");
    assert_eq!(weak(&mut e, FailedACL, "1001", a, 0), Verdict::Scored(15));
    assert_eq!(e.counters.weak_single, 1);
    assert_eq!(
        weak(&mut e, FailedACL, "1001", a, 1),
        weak_ban(30, host("198.51.100.60"), 2, 3600, false)
    );
}

#[test]
fn forged_challenges_ban_one_address_for_an_hour() {
    let mut e = engine("");
    let a = ip("198.51.100.50");
    assert_eq!(
        weak(&mut e, ChallengeSent, "1001", a, 0),
        Verdict::Scored(4)
    );
    assert_eq!(
        weak(&mut e, ChallengeSent, "1001", a, 1),
        Verdict::Scored(14)
    );
    assert_eq!(
        weak(&mut e, ChallengeSent, "1001", a, 2),
        weak_ban(24, host("198.51.100.50"), 3, 3600, false)
    );
    assert_eq!(e.counters.weak_bans, 1);
    // IPv6: the /64 shares the penalty, the ban is the address's.
    let mut e = engine("ipv6_prefix = 64\n");
    let (x, y) = (ip("2001:db8:9::1"), ip("2001:db8:9::2"));
    weak(&mut e, ChallengeSent, "1001", x, 0);
    weak(&mut e, ChallengeSent, "1001", x, 1);
    assert_eq!(
        weak(&mut e, ChallengeSent, "1001", y, 2),
        weak_ban(24, host("2001:db8:9::2"), 3, 3600, false)
    );
    // The same over TCP: the /64, for good.
    strong(&mut e, ChallengeSent, "1001", x, 3);
    strong(&mut e, ChallengeSent, "1001", x, 4);
    assert_eq!(
        strong(&mut e, ChallengeSent, "1001", y, 5),
        strong_ban(24, "2001:db8:9::/64".parse().unwrap(), 3)
    );
}

#[test]
fn only_strong_points_that_reach_the_limit_alone_ban_for_good() {
    // Forged points park the host at 14; a real challenge over TCP takes it to 24 (the
    // bump: +10), but strong evidence alone is at 10: a weak ban. What strong evidence
    // added stays: the real attacker's next events ban it for good, no later than without
    // the forgery.
    let mut e = engine("");
    let a = ip("203.0.113.7");
    weak(&mut e, ChallengeSent, "1001", a, 0);
    weak(&mut e, ChallengeSent, "1001", a, 1);
    assert_eq!(
        strong(&mut e, ChallengeSent, "1001", a, 2),
        weak_ban(24, host("203.0.113.7"), 3, 3600, false)
    );
    assert_eq!(e.table().host(a).map(|h| h.penalty), Some(10));
    assert_eq!(
        strong(&mut e, ChallengeResponseFailed, "1001", a, 3),
        Verdict::Scored(11)
    );
    assert_eq!(
        strong(&mut e, ChallengeSent, "1001", a, 4),
        strong_ban(15, host("203.0.113.7"), 5)
    );
}

#[test]
fn a_host_that_logged_in_is_banned_for_minutes_only() {
    // pjsip-reset-abuse over UDP: the holder of 1001 guesses 1002's password. It proved its
    // address (a success), so a forger could be using it: `weak_known_bantime`.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    assert_eq!(
        strong(&mut e, SuccessfulAuth, "1001", a, 0),
        Verdict::Cleared
    );
    let mut last = Verdict::Cleared;
    for t in 1..=6 {
        let kind = if t % 2 == 1 {
            ChallengeSent
        } else {
            ChallengeResponseFailed
        };
        last = weak(&mut e, kind, "1002", a, t);
    }
    assert_eq!(last, weak_ban(15, host("10.99.1.2"), 6, 300, true));
    assert_eq!(e.counters.weak_known_bans, 1);
    // Its own account's challenges stay free whatever the evidence.
    let mut e = engine("");
    strong(&mut e, SuccessfulAuth, "1001", a, 0);
    for t in 1..50 {
        assert_eq!(
            weak(&mut e, ChallengeSent, "1001", a, t),
            Verdict::Scored(0)
        );
    }
}
