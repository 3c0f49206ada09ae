//! Property tests over random event sequences (proptest).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ampere::engine::{Engine, Verdict};
use ampere::event::SecurityEvent;
use ampere::score::EventKind;
use ampere::table::PenaltyTable;
use ipnet::IpNet;
use proptest::prelude::*;

#[path = "common/strategies.rs"]
mod strategies;
use strategies::{near_addr, trust_net};

fn kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(EventKind::ALL.to_vec())
}

/// Addresses from a small pool, so that hosts repeat and cross the limit, half of them in
/// the trusted networks.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(192, 168, 0, n))),
        (0u8..8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))),
        (0u16..8).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n))),
        (0u16..8).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, n))),
        (0u8..8).prop_map(|n| IpAddr::V6(Ipv4Addr::new(192, 168, 0, n).to_ipv6_mapped())),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

fn trusted(ip: IpAddr) -> bool {
    let ip = ampere::addr::canonical(ip);
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [192, 168, 0] || v4.is_loopback(),
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 1] || v6.is_loopback(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_trusted_address_is_never_banned(
        events in prop::collection::vec((kind(), addr(), 0u64..5000), 1..400),
        loyalty in 1u32..4,
    ) {
        let cfg = ampere::config::parse(
            format!("loyalty = {loyalty}\ntrust = 192.168.0.0/24\ntrust = 2001:db8:1::/48\n").as_bytes(),
            "t",
        )
        .unwrap()
        .config;
        let mut e = Engine::new(&cfg);
        for (k, ip, t) in events {
            if let Verdict::Ban(..) = e.feed(&SecurityEvent::new(k, b"PJSIP", b"", ip), t) {
                prop_assert!(!trusted(ip), "{ip} is trusted but was banned");
            }
        }
    }

    /// Prefix scoring: whatever the prefix widths and the trusted networks, a ban never
    /// covers a trusted address, loopback or the AMI host, and it covers the address whose
    /// event made it.
    #[test]
    fn a_ban_never_covers_a_trusted_address_whatever_the_prefix(
        events in prop::collection::vec((kind(), near_addr(), 0u64..5000), 1..400),
        trust in prop::collection::vec(trust_net(), 0..4),
        v4_len in 16u8..=32,
        v6_len in 32u8..=128,
        loyalty in 1u32..4,
    ) {
        let mut text = format!(
            "loyalty = {loyalty}\nipv4_prefix = {v4_len}\nipv6_prefix = {v6_len}\nhost = 203.0.113.77\n"
        );
        for n in &trust {
            text.push_str(&format!("trust = {n}\n"));
        }
        let cfg = ampere::config::parse(text.as_bytes(), "t").unwrap().config;
        let mut protected = trust.clone();
        protected.extend(["203.0.113.77/32", "127.0.0.0/8", "::1/128"].map(|n| n.parse::<IpNet>().unwrap()));
        let mut e = Engine::new(&cfg);
        for (k, ip, t) in events {
            if let Verdict::Ban(ampere::engine::Tipped { net, .. }) = e.feed(&SecurityEvent::new(k, b"PJSIP", b"", ip), t) {
                prop_assert!(net.contains(&ampere::addr::canonical(ip)), "{net} does not cover {ip}");
                for p in &protected {
                    prop_assert!(
                        !net.contains(p) && !p.contains(&net),
                        "{net} (for {ip}) covers the protected {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_table_never_exceeds_its_capacity(
        ops in prop::collection::vec((any::<u32>(), any::<bool>(), 0u32..100), 1..2000),
        hosts in 16usize..200,
    ) {
        let mut t = PenaltyTable::new(hosts);
        let mut now = 0;
        for (n, remove, p) in ops {
            let ip = IpAddr::V4(Ipv4Addr::from(n % 1000));
            if remove {
                t.remove(ip);
            } else {
                now += 1;
                t.set(ip, p, now);
                prop_assert_eq!(t.get(ip), Some((p, now)));
            }
            prop_assert!(t.len() <= t.capacity());
        }
    }
}

/// What a correctly configured phone does: register an account (challenge, then success), or
/// send a keepalive for an account it has registered (a challenge it never answers).
#[derive(Clone, Debug)]
enum PhoneStep {
    Register(u8),
    Keepalive(u8),
}

fn phone_steps() -> impl Strategy<Value = Vec<(PhoneStep, u64)>> {
    prop::collection::vec(
        (
            prop_oneof![
                (0u8..3).prop_map(PhoneStep::Register),
                (0u8..3).prop_map(PhoneStep::Keepalive)
            ],
            0u64..4000,
        ),
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_correctly_authenticating_phone_is_never_banned(
        steps in phone_steps(),
        noise in prop::collection::vec((kind(), 0u8..50), 0..300),
        loyalty in 1u32..4,
    ) {
        let cfg = ampere::config::parse(format!("loyalty = {loyalty}\n").as_bytes(), "t")
            .unwrap()
            .config;
        let mut e = Engine::new(&cfg);
        let phone = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let accounts = [&b"1001"[..], b"1002", b"2001"];
        let mut registered = [false; 3];
        let mut now = 0;
        let mut noise = noise.into_iter();
        for (step, gap) in steps {
            now += gap;
            // Other hosts' events in between, attackers among them.
            if let Some((k, n)) = noise.next() {
                let other = IpAddr::V4(Ipv4Addr::new(203, 0, 113, n));
                e.feed(&SecurityEvent::new(k, b"PJSIP", accounts[usize::from(n % 3)], other), now);
            }
            let events: Vec<(EventKind, usize)> = match step {
                PhoneStep::Register(a) => {
                    registered[usize::from(a)] = true;
                    vec![(EventKind::ChallengeSent, a.into()), (EventKind::SuccessfulAuth, a.into())]
                }
                PhoneStep::Keepalive(a) if registered[usize::from(a)] => {
                    vec![(EventKind::ChallengeSent, a.into())]
                }
                PhoneStep::Keepalive(_) => vec![],
            };
            for (k, a) in events {
                let v = e.feed(&SecurityEvent::new(k, b"PJSIP", accounts[a], phone), now);
                prop_assert!(!matches!(v, Verdict::Ban(..)), "the phone was banned at {now}: {v:?}");
            }
        }
    }
}

/// One moment of a day at an office PBX: the phone registers, keeps its NAT binding alive,
/// calls (PJSIP, or chan_sip with its URI forms and a success that names the dialled
/// extension, or none at all from another port), Ampere restarts, or an attacker on another
/// address guesses a password.
#[derive(Clone, Debug)]
enum Moment {
    Register(u8),
    Keepalive(u8),
    Call { form: u8, answered: bool },
    Restart,
    Guess(u8),
}

fn moments() -> impl Strategy<Value = Vec<(Moment, u64)>> {
    prop::collection::vec(
        (
            prop_oneof![
                3 => (0u8..2).prop_map(Moment::Register),
                6 => (0u8..2).prop_map(Moment::Keepalive),
                3 => (0u8..3, any::<bool>()).prop_map(|(form, answered)| Moment::Call { form, answered }),
                1 => Just(Moment::Restart),
                4 => (0u8..4).prop_map(Moment::Guess),
            ],
            0u64..10,
        ),
        1..200,
    )
}

/// The message Asterisk would send, as bytes for the framer.
fn ami_event(kind: &str, service: &str, account: &str, session: &str, addr: &str) -> String {
    format!(
        "Event: {kind}\r\nService: {service}\r\nAccountID: {account}\r\nSessionID: {session}\r\nRemoteAddress: IPV4/UDP/{addr}/5060\r\n\r\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Through the daemon's own path (framer, judge, the store's file across restarts): the
    /// phone is never banned; every attacker is banned exactly at its third guess since the
    /// last restart (penalties live in memory, as before).
    #[test]
    fn a_phone_is_never_banned_whatever_the_restarts(moments in moments()) {
        use ampere::ami::{Framer, Item};
        use ampere::judge::Judge;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ampere.db");
        let cfg = ampere::config::Config::default();
        let start = |stored: &ampere::store::Store| {
            let mut j = Judge::new(&cfg);
            j.engine.set_wall_base(1_800_000_000);
            j.engine.load_known(&stored.known_since(0, cfg.known_max).unwrap());
            j
        };
        let mut store = ampere::store::Store::open(&db).unwrap();
        let mut judge = start(&store);
        let phone = "10.99.1.2";
        let accounts = ["1001", "1002"];
        let mut registered = [false; 2];
        let mut guesses = [0u32; 4];
        let mut banned = [false; 4];
        let (mut now, mut n) = (0u64, 0u32);
        for (m, gap) in moments {
            now += gap;
            n += 1;
            let s = format!("s{n}");
            let text = match m {
                Moment::Restart => {
                    store.record_known(&judge.engine.take_learned(), cfg.known_max).unwrap();
                    drop(store);
                    store = ampere::store::Store::open(&db).unwrap();
                    judge = start(&store);
                    guesses = [0; 4];
                    banned = [false; 4];
                    continue;
                }
                Moment::Register(a) => {
                    registered[usize::from(a)] = true;
                    let acct = accounts[usize::from(a)];
                    ami_event("ChallengeSent", "PJSIP", acct, &s, phone)
                        + &ami_event("SuccessfulAuth", "PJSIP", acct, &s, phone)
                }
                // A phone keeps alive only an account it registered.
                Moment::Keepalive(a) if registered[usize::from(a)] => {
                    ami_event("ChallengeSent", "PJSIP", accounts[usize::from(a)], &s, phone)
                }
                Moment::Keepalive(_) => continue,
                Moment::Call { form, answered } => {
                    let from = match form {
                        0 => "1001".to_string(),
                        1 => "sip:1001@10.99.1.1".to_string(),
                        _ => "\"Desk\" <sip:1001@10.99.1.1>".to_string(),
                    };
                    // A call that is not answered by a success comes from another source
                    // port of a phone that registered (chan_sip sends no success then).
                    if !answered && !registered[0] {
                        continue;
                    }
                    let mut t = ami_event("ChallengeSent", "SIP", &from, &s, phone);
                    if answered {
                        t += &ami_event("SuccessfulAuth", "SIP", if form == 0 { "1001" } else { "600" }, &s, phone);
                    }
                    t
                }
                Moment::Guess(k) if banned[usize::from(k)] => continue,
                Moment::Guess(k) => {
                    let atk = format!("203.0.113.{}", 10 + k);
                    ami_event("ChallengeSent", "PJSIP", "1001", &s, &atk)
                        + &ami_event("ChallengeResponseFailed", "PJSIP", "1001", &s, &atk)
                }
            };
            let mut framer = Framer::new();
            framer.push(b"Asterisk Call Manager/11.0.0\r\n", &mut |_| {});
            let mut verdicts = Vec::new();
            framer.push(text.as_bytes(), &mut |item| {
                if let Item::Message(msg) = item {
                    let time = ampere::judge::Time::At { mono: now, wall: 1_800_000_000 + now as i64 };
                    if let Some(j) = judge.judge(&msg, time) {
                        verdicts.push((j.event.addr().to_string(), j.verdict));
                    }
                }
            });
            for (addr, v) in verdicts {
                let ban = matches!(v, Verdict::Ban(..));
                prop_assert!(!(ban && addr == phone), "the phone was banned at {now}: {v:?}");
                if let Some(k) = addr.strip_prefix("203.0.113.").and_then(|x| x.parse::<usize>().ok()) {
                    let k = k - 10;
                    if ban {
                        banned[k] = true;
                    }
                }
            }
            if let Moment::Guess(k) = m {
                let k = usize::from(k);
                guesses[k] += 1;
                prop_assert_eq!(banned[k], guesses[k] >= 3, "attacker {} after {} guesses", k, guesses[k]);
            }
            // What the daemon writes after each read.
            store.record_known(&judge.engine.take_learned(), cfg.known_max).unwrap();
        }
    }
}

/// One moment at an office behind one NAT address: a phone registers one of its lines (the
/// right password), the device of line 1002 tries an old password, or a guesser behind the
/// same address tries a password of an account that never logged in from there.
#[derive(Clone, Debug)]
enum Office {
    Register(u8),
    Stale,
    Guess(u8),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Banned for good only when a guesser was there: registrations and a stale password's
    /// retries, in any order and number, never bring a strong ban; a guesser's do, by its
    /// third wrong password. Strong evidence throughout (TCP: nothing here is forgeable).
    #[test]
    fn an_office_is_banned_for_good_only_when_a_guesser_was_there(
        steps in prop::collection::vec(
            (
                prop_oneof![
                    4 => (0u8..2).prop_map(Office::Register),
                    6 => Just(Office::Stale),
                    1 => (0u8..2).prop_map(Office::Guess),
                ],
                // A run stays within findtime (300 × 11 s): a guesser's points never decay.
                1u64..12,
            ),
            1..300,
        ),
    ) {
        let mut e = Engine::new(&ampere::config::Config::default());
        let office = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
        let lines = [&b"1001"[..], b"1002"];
        let targets = [&b"1003"[..], b"1004"];
        let (mut now, mut n) = (0u64, 0u32);
        let mut registered_1002 = false;
        let mut guesses = 0u32;
        let feed = |e: &mut Engine, kind, acct: &[u8], s: &str, now| {
            let mut ev = SecurityEvent::new(kind, b"PJSIP", acct, office);
            ev.session = s.as_bytes();
            e.feed(&ev, now)
        };
        for (step, gap) in steps {
            now += gap;
            n += 1;
            let s = format!("s{n}");
            let verdicts = match step {
                Office::Register(l) => {
                    registered_1002 |= l == 1;
                    vec![
                        feed(&mut e, EventKind::ChallengeSent, lines[usize::from(l)], &s, now),
                        feed(&mut e, EventKind::SuccessfulAuth, lines[usize::from(l)], &s, now),
                    ]
                }
                // The device retries 1002 only after 1002 had registered (its password
                // changed since).
                Office::Stale if registered_1002 => vec![
                    feed(&mut e, EventKind::ChallengeSent, b"1002", &s, now),
                    feed(&mut e, EventKind::ChallengeResponseFailed, b"1002", &s, now),
                ],
                Office::Stale => continue,
                Office::Guess(t) => {
                    guesses += 1;
                    vec![
                        feed(&mut e, EventKind::ChallengeSent, targets[usize::from(t)], &s, now),
                        feed(&mut e, EventKind::ChallengeResponseFailed, targets[usize::from(t)], &s, now),
                    ]
                }
            };
            for v in verdicts {
                if let Verdict::Ban(t) = v {
                    prop_assert!(
                        t.weak.is_some() || guesses > 0,
                        "banned for good at {now} with no guesser there: {v:?}"
                    );
                    if t.weak.is_none() {
                        // Banned: the guesser's count starts again, as the kernel would
                        // have stopped it.
                        guesses = 0;
                    }
                }
            }
            prop_assert!(guesses < 3, "a guesser made {guesses} guesses unbanned");
        }
    }
}
