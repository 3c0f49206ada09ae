use super::*;
use EventKind::*;

fn engine(extra: &str) -> Engine {
    let cfg = crate::config::parse(extra.as_bytes(), "t").unwrap().config;
    Engine::new(&cfg)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The ban of one address.
fn host(s: &str) -> IpNet {
    IpNet::from(ip(s))
}

/// The verdict of a ban on strong evidence.
pub(super) fn strong_ban(penalty: u32, net: IpNet, events: u32) -> Verdict {
    Verdict::Ban(Tipped {
        penalty,
        net,
        events,
        weak: None,
    })
}

/// The engine fed one event as the matcher would build it.
trait Feed {
    fn feed_as(&mut self, kind: EventKind, service: &[u8], addr: IpAddr, now: u64) -> Verdict;
}

impl Feed for Engine {
    fn feed_as(&mut self, kind: EventKind, service: &[u8], addr: IpAddr, now: u64) -> Verdict {
        self.feed(&SecurityEvent::new(kind, service, b"1001", addr), now)
    }
}

#[test]
fn wrong_password_sequence_bans_on_third_failure() {
    let mut e = engine("");
    let a = ip("10.99.1.2");
    let mut out = Vec::new();
    for k in [
        ChallengeSent,
        ChallengeResponseFailed,
        ChallengeSent,
        ChallengeResponseFailed,
        ChallengeSent,
        ChallengeResponseFailed,
    ] {
        out.push(e.feed_as(k, b"PJSIP", a, 0));
    }
    use Verdict::*;
    assert_eq!(
        out,
        vec![
            Scored(4),
            Scored(5),
            Scored(9),
            Scored(10),
            Scored(14),
            strong_ban(15, host("10.99.1.2"), 6)
        ]
    );
    assert!(e.table().is_empty());
}

#[test]
fn protected_and_service_filter() {
    let mut e = engine("trust = 10.99.0.0/16\nservices = PJSIP\n");
    assert_eq!(
        e.feed_as(FailedACL, b"PJSIP", ip("10.99.1.2"), 0),
        Verdict::Protected
    );
    assert_eq!(
        e.feed_as(FailedACL, b"PJSIP", ip("::1"), 0),
        Verdict::Protected
    );
    assert_eq!(
        e.feed_as(FailedACL, b"PJSIP", ip("::ffff:127.0.0.1"), 0),
        Verdict::Protected
    );
    assert_eq!(
        e.feed_as(InvalidPassword, b"AMI", ip("203.0.113.2"), 0),
        Verdict::IgnoredService
    );
    assert_eq!(
        e.feed_as(InvalidPassword, b"pjsip", ip("203.0.113.2"), 0),
        Verdict::Scored(1)
    );
}

fn feed_acct(e: &mut Engine, kind: EventKind, acct: &str, a: IpAddr, now: u64) -> Verdict {
    e.feed(&SecurityEvent::new(kind, b"PJSIP", acct.as_bytes(), a), now)
}

#[test]
fn success_clears_its_own_account_and_decay_after_findtime() {
    let mut e = engine("findtime = 60\n");
    let a = ip("203.0.113.2");
    assert_eq!(
        e.feed_as(ChallengeSent, b"PJSIP", a, 100),
        Verdict::Scored(4)
    );
    assert_eq!(
        e.feed_as(SuccessfulAuth, b"PJSIP", a, 101),
        Verdict::Cleared
    );
    // Challenges for another account count as before.
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1002", a, 102),
        Verdict::Scored(4)
    );
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1002", a, 161),
        Verdict::Scored(14)
    );
    // quiet for 60 s: starts from zero
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1002", a, 221),
        Verdict::Scored(4)
    );
}

#[test]
fn a_success_never_clears_failures_against_another_account() {
    // pjsip-reset-abuse: guesses against 1002, a login as 1001 after every second one.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    let mut out = Vec::new();
    for _ in 0..3 {
        for _ in 0..2 {
            out.push(feed_acct(&mut e, ChallengeSent, "1002", a, 0));
            out.push(feed_acct(&mut e, ChallengeResponseFailed, "1002", a, 0));
        }
        out.push(feed_acct(&mut e, ChallengeSent, "1001", a, 0));
        out.push(feed_acct(&mut e, SuccessfulAuth, "1001", a, 0));
    }
    use Verdict::*;
    assert_eq!(
        out[..8],
        [
            Scored(4),
            Scored(5),
            Scored(9),
            Scored(10),
            Scored(14),
            Scored(10),
            Scored(14),
            strong_ban(15, host("10.99.1.2"), 7)
        ]
    );
    // Also when the success comes without a challenge of its own first.
    let c = ip("10.99.1.4");
    assert_eq!(feed_acct(&mut e, ChallengeSent, "1002", c, 0), Scored(4));
    assert_eq!(
        feed_acct(&mut e, ChallengeResponseFailed, "1002", c, 0),
        Scored(5)
    );
    assert_eq!(feed_acct(&mut e, SuccessfulAuth, "1001", c, 0), Scored(5));
    // Nor failures of unknown accounts or ACLs.
    let b = ip("10.99.1.3");
    assert_eq!(feed_acct(&mut e, FailedACL, "1002", b, 0), Scored(4));
    assert_eq!(feed_acct(&mut e, SuccessfulAuth, "1002", b, 0), Scored(4));
}

#[test]
fn a_mistyped_password_is_forgiven_by_the_right_one() {
    let mut e = engine("");
    let a = ip("10.99.1.2");
    for (k, p) in [
        (ChallengeSent, 4),
        (ChallengeResponseFailed, 5),
        (ChallengeSent, 9),
        (ChallengeResponseFailed, 10),
        (ChallengeSent, 14),
    ] {
        assert_eq!(feed_acct(&mut e, k, "1001", a, 0), Verdict::Scored(p));
    }
    assert_eq!(
        feed_acct(&mut e, SuccessfulAuth, "1001", a, 0),
        Verdict::Cleared
    );
}

#[test]
fn keepalive_challenges_of_a_logged_in_phone_are_free_and_its_own_failures_counted_apart() {
    // pjsip-options-keepalive: REGISTER (challenge, success), then unanswered OPTIONS.
    let mut e = engine("");
    let a = ip("10.99.1.2");
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", a, 0),
        Verdict::Scored(4)
    );
    assert_eq!(
        feed_acct(&mut e, SuccessfulAuth, "1001", a, 1),
        Verdict::Cleared
    );
    for t in 2..100 {
        assert_eq!(
            feed_acct(&mut e, ChallengeSent, "1001", a, t),
            Verdict::Scored(0)
        );
    }
    // Its own account's wrong password: a stale password's, counted apart
    // (`stale_password_limit`); another account's challenge counts as anybody's.
    assert_eq!(
        feed_acct(&mut e, ChallengeResponseFailed, "1001", a, 100),
        Verdict::Scored(0)
    );
    assert_eq!(e.counters.stale_failures, 1);
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1002", a, 101),
        Verdict::Scored(4)
    );
    // pjsip-challenge: a host that never logged in keeps its verdict (4, 14, 24).
    let b = ip("10.99.1.9");
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", b, 0),
        Verdict::Scored(4)
    );
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", b, 0),
        Verdict::Scored(14)
    );
    assert_eq!(
        feed_acct(&mut e, ChallengeSent, "1001", b, 0),
        strong_ban(24, host("10.99.1.9"), 3)
    );
}

#[test]
fn an_unknown_account_bans_a_host_that_never_logged_in() {
    let mut e = engine("");
    assert_eq!(
        feed_acct(&mut e, InvalidAccountID, "100", ip("203.0.113.2"), 0),
        strong_ban(15, host("203.0.113.2"), 1)
    );
    // A host that logged in before is scored as the weight says.
    let a = ip("10.99.1.2");
    feed_acct(&mut e, SuccessfulAuth, "1001", a, 0);
    assert_eq!(
        feed_acct(&mut e, InvalidAccountID, "1009", a, 1),
        Verdict::Scored(5)
    );
    // And the rule can be turned off.
    let mut off = engine("ban_unknown_account = no\n");
    assert_eq!(
        feed_acct(&mut off, InvalidAccountID, "100", ip("203.0.113.2"), 0),
        Verdict::Scored(5)
    );
}

#[test]
fn loyalty_and_weights_from_config() {
    let mut e = engine("loyalty = 1\nweight.InvalidPassword = 5\n");
    assert_eq!(
        e.feed_as(InvalidPassword, b"SIP", ip("198.51.100.1"), 0),
        strong_ban(5, host("198.51.100.1"), 1)
    );
    let mut e = engine("weight.ChallengeSent = 0\n");
    assert_eq!(
        e.feed_as(ChallengeSent, b"SIP", ip("198.51.100.1"), 0),
        Verdict::Scored(0)
    );
    assert!(e.table().is_empty());
}

#[test]
fn an_account_hashes_alike_in_every_engine() {
    // The logged-in accounts of a host are a Bloom filter with false positives (about 0.4 %
    // for one account). Keyed per process, they fell on other accounts in every run: the
    // same capture was judged differently now and then (CI saw `1002`'s challenge after a
    // login as `1001` scored 0), and `--replay` could disagree with the daemon.
    // Now a pure function of the name (`account::key`): pinned, so that no per-process key
    // can creep back in.
    let fnv = |s: &[u8]| {
        let h = s.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        ((h ^ (h >> 32)) as u32).max(1)
    };
    for acct in [&b"1001"[..], b"1002", b"100", b"admin", b"\xff\x00"] {
        assert_eq!(crate::account::key(acct), fnv(acct));
    }
}

/// Two wrong passwords from an address, as PJSIP reports them (challenge, wrong answer).
fn two_guesses(e: &mut Engine, a: IpAddr, now: u64) -> Vec<Verdict> {
    let mut out = Vec::new();
    for _ in 0..2 {
        out.push(e.feed_as(ChallengeSent, b"PJSIP", a, now));
        out.push(e.feed_as(ChallengeResponseFailed, b"PJSIP", a, now));
    }
    out
}

fn nth_of_64(n: u16) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 7, n))
}

#[test]
fn addresses_of_one_64_are_one_attacker() {
    let mut e = engine("");
    let mut verdicts = two_guesses(&mut e, nth_of_64(1), 0);
    verdicts.extend(two_guesses(&mut e, nth_of_64(2), 0));
    let net: IpNet = "2001:db8:1:2::/64".parse().unwrap();
    use Verdict::*;
    // The second address goes on from the first's 10: its second guess is the third
    // failure of the /64.
    assert_eq!(
        verdicts,
        [
            Scored(4),
            Scored(5),
            Scored(9),
            Scored(10),
            Scored(14),
            strong_ban(15, net, 6),
            Scored(4),
            Scored(5)
        ]
    );
    // Per address (the old behaviour) nobody reaches the limit.
    let mut e = engine("ipv6_prefix = 128\n");
    for n in 0..1000 {
        let v = two_guesses(&mut e, nth_of_64(n), 0);
        assert_eq!(v.last(), Some(&Scored(10)), "{n}");
    }
}

#[test]
fn a_prefix_with_a_protected_address_in_it_is_scored_per_address() {
    let trusted = nth_of_64(5);
    let mut e = engine(&format!("trust = {trusted}\n"));
    // Every other address of the /64 is on its own: two guesses each, no ban.
    for n in (0..50).filter(|&n| n != 5) {
        assert_eq!(
            two_guesses(&mut e, nth_of_64(n), 0).last(),
            Some(&Verdict::Scored(10))
        );
    }
    assert_eq!(
        e.feed_as(InvalidPassword, b"PJSIP", trusted, 0),
        Verdict::Protected
    );
    // A third guess bans that one address, never the /64.
    e.feed_as(ChallengeSent, b"PJSIP", nth_of_64(1), 0);
    let v = e.feed_as(ChallengeResponseFailed, b"PJSIP", nth_of_64(1), 0);
    assert_eq!(v, strong_ban(15, IpNet::from(nth_of_64(1)), 6));
    // The key says which protected network narrowed it.
    assert_eq!(
        e.key_of(nth_of_64(9)),
        (IpNet::from(nth_of_64(9)), Some(IpNet::from(trusted)))
    );
    // Another /64 is scored as one.
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(
        e.key_of(other),
        ("2001:db8:1:3::/64".parse().unwrap(), None)
    );
}

#[test]
fn the_ami_peer_and_host_narrow_their_prefix() {
    let mut e = engine("host = 2001:db8:1:2::99\nipv4_prefix = 24\n");
    assert_eq!(e.key_of(nth_of_64(1)).0, IpNet::from(nth_of_64(1)));
    // IPv4 prefixes work alike; the peer AMI is connected to narrows its /24.
    let a = ip("198.51.100.7");
    assert_eq!(e.key_of(a).0, "198.51.100.0/24".parse().unwrap());
    e.set_ami_peer(Some(ip("198.51.100.1")));
    assert_eq!(
        e.key_of(a),
        (host("198.51.100.7"), Some(host("198.51.100.1")))
    );
}

mod known;
mod stale;
mod weak;
