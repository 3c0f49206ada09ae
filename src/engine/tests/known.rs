//! What the engine knows of legitimate hosts: chan_sip's calls, the memory that outlives a
//! restart, and what Asterisk reports about registrations.

use super::*;
use crate::facts::{Fact, Source};

/// An event of `kind` for `acct` in session `sess`, from `a`, over chan_sip.
fn sip(e: &mut Engine, kind: EventKind, acct: &str, sess: &str, a: IpAddr, now: u64) -> Verdict {
    let mut ev = SecurityEvent::new(kind, b"SIP", acct.as_bytes(), a);
    ev.session = sess.as_bytes();
    e.feed(&ev, now)
}

#[test]
fn a_chan_sip_call_is_not_an_attack() {
    // sip-phone-calls-5060 without its registrations: a peer that only calls (another
    // PBX, a phone whose registration Ampere never saw). Each INVITE is challenged as the
    // From URI and succeeds as the dialled extension, in the same session.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    for call in 0..20u64 {
        let s = format!("0x7fa7440{call:05x}");
        assert_eq!(
            sip(&mut e, ChallengeSent, "sip:1001@10.99.1.1", &s, a, call),
            Verdict::Scored(4),
            "call {call}"
        );
        assert_eq!(
            sip(&mut e, SuccessfulAuth, "600", &s, a, call),
            Verdict::Cleared
        );
    }
}

#[test]
fn a_registered_phone_calls_from_another_port_without_a_success() {
    // From another source port chan_sip sends no SuccessfulAuth for the call at all; the
    // challenge names the account the phone registered as, in its URI form.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    sip(&mut e, ChallengeSent, "1001", "0x1", a, 0);
    sip(&mut e, SuccessfulAuth, "1001", "0x1", a, 0);
    for (i, form) in [
        "sip:1001@10.99.1.1",
        "\"Desk\" <sip:1001@10.99.1.1>",
        "<sip:1001@pbx.example;transport=udp>",
    ]
    .iter()
    .cycle()
    .take(30)
    .enumerate()
    {
        assert_eq!(
            sip(&mut e, ChallengeSent, form, &format!("0x{i}f"), a, 1),
            Verdict::Scored(0),
            "{form}"
        );
    }
}

#[test]
fn a_session_with_a_failed_answer_forgives_nothing() {
    // The holder of 1001 guessing 1002, reusing one Call-ID for its guess and its own
    // login: every guess still costs what it cost (pjsip-reset-abuse's verdict).
    let mut e = engine("");
    let a = ip("10.99.1.2");
    let mut last = Verdict::Cleared;
    for guess in 0..3u64 {
        let s = "same-call-id@attacker";
        sip(&mut e, ChallengeSent, "1002", s, a, guess);
        last = sip(&mut e, ChallengeResponseFailed, "1002", s, a, guess);
        if matches!(last, Verdict::Ban(..)) {
            break;
        }
        sip(&mut e, SuccessfulAuth, "1001", s, a, guess);
    }
    assert_eq!(last, super::strong_ban(15, host("10.99.1.2"), 6));
    // A success in another session forgives nothing either.
    let b = ip("10.99.1.3");
    sip(&mut e, ChallengeSent, "1002", "x", b, 0);
    assert_eq!(
        sip(&mut e, SuccessfulAuth, "1001", "y", b, 0),
        Verdict::Scored(4)
    );
}

#[test]
fn what_a_phone_proved_survives_a_restart_of_ampere() {
    let mut before = engine("");
    before.set_wall_base(1_800_000_000);
    let phone = ip("10.99.1.2");
    feed_acct(&mut before, ChallengeSent, "1001", phone, 0);
    feed_acct(&mut before, SuccessfulAuth, "1001", phone, 1);
    let stored = before.take_learned();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].addr,
            &stored[0].account[..],
            stored[0].source,
            stored[0].last
        ),
        (phone, &b"1001"[..], Source::Login, 1_800_000_001)
    );
    // A new process: what was stored is loaded before the first event.
    let mut after = engine("");
    after.load_known(&stored);
    for t in 0..50 {
        assert_eq!(
            feed_acct(&mut after, ChallengeSent, "1001", phone, t),
            Verdict::Scored(0)
        );
    }
    // An attacker elsewhere is banned as ever, at its third challenge.
    let atk = ip("203.0.113.2");
    feed_acct(&mut after, ChallengeSent, "1001", atk, 0);
    feed_acct(&mut after, ChallengeSent, "1001", atk, 0);
    assert_eq!(
        feed_acct(&mut after, ChallengeSent, "1001", atk, 0),
        super::strong_ban(24, host("203.0.113.2"), 3)
    );
    // Known is not a pass: the phone's wrong passwords still count, apart (a stale
    // password: `stale_password_limit`), and another account's as anybody's.
    assert_eq!(
        feed_acct(&mut after, ChallengeResponseFailed, "1001", phone, 60),
        Verdict::Scored(0)
    );
    assert_eq!(after.counters.stale_failures, 1);
    assert_eq!(
        feed_acct(&mut after, ChallengeResponseFailed, "1002", phone, 61),
        Verdict::Scored(1)
    );
}

#[test]
fn a_registration_asterisk_reports_frees_the_keepalives_and_a_forgotten_one_does_not() {
    let mut e = engine("");
    e.set_wall_base(1_800_000_000);
    let phone = ip("10.99.1.2");
    // Tracked before the fact arrives: the table's copy follows.
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", phone, 0),
        Verdict::Scored(4)
    );
    e.learn(
        &Fact {
            net: host("10.99.1.2"),
            account: b"1001",
            source: Source::Contact,
        },
        1,
    );
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", phone, 2),
        Verdict::Scored(4)
    );
    // Four weeks later, never seen again: forgotten, in the table's copy too.
    assert_eq!(e.forget_known(1_800_000_000 + 28 * 86_400, 3), 1);
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", phone, 4),
        Verdict::Scored(14)
    );
}

#[test]
fn a_trunk_is_known_by_its_network_and_protected_addresses_are_not_learned() {
    let mut e = engine("trust = 192.0.2.0/24\n");
    e.learn(
        &Fact {
            net: "198.51.100.0/24".parse().unwrap(),
            account: b"provider",
            source: Source::Trunk,
        },
        0,
    );
    assert_eq!(e.known().networks(), 1);
    // A host of the trunk's network that sends an unknown account is scored, not banned
    // at once: it is a known party.
    assert_eq!(
        feed_acct(
            &mut e,
            InvalidAccountID,
            "0046812345678",
            ip("198.51.100.9"),
            0
        ),
        Verdict::Scored(5)
    );
    e.learn(
        &Fact {
            net: host("192.0.2.7"),
            account: b"1001",
            source: Source::Sip,
        },
        0,
    );
    assert_eq!(e.known().len(), 0);
}
