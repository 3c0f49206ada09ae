//! Phones with the right password that Asterisk's policy refuses (a contact limit), and
//! devices with an old password behind an office's NAT: never banned for good, named for
//! the admin. A guesser whose target never logged in from there keeps today's verdict.

use super::*;

/// An event of `kind` for `acct` in session `sess` from `a` (strong evidence: the rules
/// here hold whatever the transport).
fn ev(e: &mut Engine, kind: EventKind, acct: &str, sess: &str, a: IpAddr, now: u64) -> Verdict {
    let mut ev = SecurityEvent::new(kind, b"PJSIP", acct.as_bytes(), a);
    ev.session = sess.as_bytes();
    e.feed(&ev, now)
}

fn refusal(
    e: &mut Engine,
    acl: &'static str,
    acct: &str,
    sess: &str,
    a: IpAddr,
    now: u64,
) -> Verdict {
    let mut ev = SecurityEvent::new(FailedACL, b"PJSIP", acct.as_bytes(), a);
    ev.session = sess.as_bytes();
    ev.registrar = crate::event::RegistrarRefusal::of(acl.as_bytes());
    e.feed(&ev, now)
}

/// A REGISTER with the right password: challenged, accepted.
fn register(e: &mut Engine, acct: &str, a: IpAddr, n: u64, now: u64) {
    let s = format!("reg{acct}-{n}");
    ev(e, ChallengeSent, acct, &s, a, now);
    assert_eq!(ev(e, SuccessfulAuth, acct, &s, a, now), Verdict::Cleared);
}

const LIMIT: &str = "registrar_attempt_exceeds_maximum_configured_contacts";

#[test]
fn the_contact_limit_after_a_success_costs_nothing() {
    // pjsip-max-contacts: each REGISTER is challenged, accepted, then refused by the
    // registrar in the same request. The original banned the phone at its 4th.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    for n in 0..50 {
        let s = format!("{n}@phone");
        ev(&mut e, ChallengeSent, "1001", &s, a, n);
        assert_eq!(
            ev(&mut e, SuccessfulAuth, "1001", &s, a, n),
            Verdict::Cleared
        );
        assert_eq!(
            refusal(&mut e, LIMIT, "1001", &s, a, n),
            Verdict::Scored(0),
            "{n}"
        );
    }
    assert_eq!(e.counters.registrar_refusals, 50);
    let r = e.notes().latest_refusal.clone().unwrap();
    assert_eq!((r.addr, &r.account[..], r.acl), (a, "1001", LIMIT));
    // The same refusal without a success in its request, or for another account: its
    // weight (a FailedACL).
    assert_eq!(
        refusal(&mut e, LIMIT, "1001", "other", a, 60),
        Verdict::Scored(4)
    );
    assert_eq!(
        refusal(&mut e, LIMIT, "1002", "49@phone", a, 61),
        Verdict::Scored(9)
    );
    // An ACL's refusal keeps its weight whatever came before.
    let mut e = engine("");
    register(&mut e, "1001", a, 0, 0);
    let mut acl = SecurityEvent::new(FailedACL, b"PJSIP", b"1001", a);
    acl.session = b"reg1001-0";
    assert_eq!(e.feed(&acl, 1), Verdict::Scored(4));
}

#[test]
fn a_stale_password_beside_a_working_phone_is_never_banned_for_good() {
    // The office: 1001 and 1002 registered from one NAT address; then 1002's password
    // changes and its device retries every 30 s for an hour while 1001 keeps registering
    // every 5 min.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    register(&mut e, "1001", a, 0, 0);
    register(&mut e, "1002", a, 0, 0);
    let mut bans = Vec::new();
    for i in 1..=120u64 {
        let now = i * 30;
        let s = format!("stale{i}");
        assert_eq!(
            ev(&mut e, ChallengeSent, "1002", &s, a, now),
            Verdict::Scored(0)
        );
        let v = ev(&mut e, ChallengeResponseFailed, "1002", &s, a, now);
        if let Verdict::Ban(t) = v {
            bans.push((i, t));
        } else {
            assert_eq!(v, Verdict::Scored(0), "failure {i}");
        }
        if i % 10 == 0 {
            register(&mut e, "1001", a, i, now);
        }
    }
    // Every 30 failures (`stale_password_limit`), a ban of the address for 5 min at most.
    assert_eq!(bans.len(), 4, "{bans:?}");
    for (i, t) in &bans {
        assert_eq!(i % 30, 0);
        assert_eq!(t.net, host("10.99.1.2"));
        assert_eq!(
            t.weak,
            Some(WeakBan {
                ceiling: 300,
                known: true,
                stale: true
            })
        );
    }
    let stale = e.notes().stale();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (&stale[0].account[..], stale[0].failures, stale[0].bans),
        ("1002", 120, 4)
    );
    // 1002's device gets the new password: forgiven, and nothing is left.
    register(&mut e, "1002", a, 999, 3601);
    assert_eq!(e.penalty_of(a, 3601).1, None);
}

#[test]
fn a_guesser_whose_target_never_logged_in_there_keeps_its_verdict() {
    // pjsip-reset-abuse: the holder of 1001 guesses 1002's password; 1002 never logged in
    // from that address. Banned at the third guess, as before (strong evidence: for good).
    let mut e = engine("");
    let a = ip("10.99.1.2");
    register(&mut e, "1001", a, 0, 0);
    let mut last = Verdict::Cleared;
    for i in 0..3 {
        let s = format!("g{i}");
        ev(&mut e, ChallengeSent, "1002", &s, a, 1);
        last = ev(&mut e, ChallengeResponseFailed, "1002", &s, a, 1);
    }
    assert_eq!(last, strong_ban(15, host("10.99.1.2"), 7));
    assert_eq!(e.counters.stale_failures, 0);
}
