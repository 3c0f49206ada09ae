//! Weak evidence through the daemon's whole path (pipeline, bans, subnet escalation, the
//! CrowdSec push queue): forged events for any address, a registered phone's included,
//! mixed with real attackers over TCP.

use proptest::prelude::*;

use super::*;
use crate::ami::{Framer, Item};
use crate::crowdsec::Lapi;
use crate::judge::{Judge, Time};
use crate::score::{EventKind, Evidence};

/// Forged sources: one /24, and a registered phone.
const FORGED: [&str; 4] = [
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.3",
    "198.51.100.4",
];
const PHONE: &str = "203.0.113.200";
/// Real attackers over TCP, in one /24 (three bans escalate to it).
const ATTACKERS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];

#[derive(Clone, Debug)]
enum Step {
    /// A forged UDP event: kind, account, from (an index into FORGED, then the phone, then
    /// the attackers: forged packets can name any address).
    Forged(EventKind, &'static str, usize),
    /// A real wrong password over TCP from an attacker: challenge and failed answer.
    Guess(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let kinds = vec![
        EventKind::ChallengeSent,
        EventKind::ChallengeResponseFailed,
        EventKind::InvalidAccountID,
        EventKind::FailedACL,
    ];
    prop_oneof![
        3 => (prop::sample::select(kinds), prop::sample::select(vec!["1001", "1002", "9999"]), 0..FORGED.len() + 1 + ATTACKERS.len())
            .prop_map(|(k, a, w)| Step::Forged(k, a, w)),
        1 => (0..ATTACKERS.len()).prop_map(Step::Guess),
    ]
}

fn event(kind: EventKind, account: &str, transport: &str, addr: &str) -> String {
    format!(
        "Event: {}\r\nService: PJSIP\r\nAccountID: {account}\r\nSessionID: s\r\nRemoteAddress: IPV4/{transport}/{addr}/5060\r\n\r\n",
        kind.name()
    )
}

struct Daemon {
    rig: Rig,
    judge: Judge,
    framer: Framer,
    lapi: Lapi,
}

impl Daemon {
    /// `text` through the pipeline at `now`, then the write path and escalation as the
    /// daemon runs them; the bans the daemon would tell CrowdSec about go to the push
    /// queue. Returns the bans made.
    fn read(&mut self, text: &str, now: i64) -> Vec<Ban> {
        let Daemon { judge, framer, .. } = self;
        let mut requests = Vec::new();
        framer.push(text.as_bytes(), &mut |item| {
            if let Item::Message(m) = item {
                let time = Time::At {
                    mono: (now - T0) as u64,
                    wall: now,
                };
                if let Some(r) = judge.judge(&m, time).and_then(|j| j.request()) {
                    requests.push(r);
                }
            }
        });
        for r in requests {
            self.rig.bans.queue(r);
        }
        let cfg = self.rig.cfg.clone();
        let mut banned = self.rig.bans.flush(&cfg, || now).banned;
        // The tests run as threads of one process: another test's child, between its fork
        // and its exec, holds a copy of every descriptor, this rig's kernel lock too, for
        // a moment (long under qemu: a failure seen once on armv7). The daemon, one thread,
        // never forks with the lock open but to exec at once; it tries again after
        // `LOCK_RETRY`, and so does this, for at most 5 s.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.rig.bans.lock_wait.is_some() && std::time::Instant::now() < end {
            std::thread::sleep(crate::bans::lock::LOCK_RETRY);
            banned.extend(self.rig.bans.flush(&cfg, || now).banned);
        }
        let escalated = self
            .rig
            .bans
            .escalate(&cfg, &banned, self.judge.engine.admission());
        banned.extend(escalated.banned);
        for b in &banned {
            self.lapi.banned(b);
        }
        self.rig.timers(now);
        banned
    }

    fn pushed(&mut self) -> usize {
        self.lapi.counters().push.map_or(0, |p| p.1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn forged_events_never_ban_for_good_spread_or_get_pushed(
        steps in prop::collection::vec(step(), 1..150),
    ) {
        // The defaults (a permanent first ban, subnets after 3), and the push role on.
        let rig = rig("crowdsec_url = http://127.0.0.1:9\ncrowdsec_login = a\ncrowdsec_password = b\n");
        let cfg = rig.cfg.clone();
        let mut d = Daemon {
            judge: Judge::new(&cfg),
            framer: Framer::new(),
            lapi: Lapi::new(&cfg),
            rig,
        };
        d.framer.push(b"Asterisk Call Manager/9.0.0\r\n", &mut |_| {});
        d.judge.engine.set_wall_base(T0);
        // The phone registers: a success proves its address.
        d.read(&event(EventKind::SuccessfulAuth, "1001", "UDP", PHONE), T0);
        let mut guesses = [0u32; ATTACKERS.len()];
        let mut pushed = 0;
        for (i, s) in steps.into_iter().enumerate() {
            let now = T0 + 1 + i as i64;
            let (text, attacker) = match s {
                Step::Forged(kind, account, w) => {
                    let addr = FORGED.iter().chain([&PHONE]).chain(&ATTACKERS).nth(w).unwrap();
                    (event(kind, account, "UDP", addr), None)
                }
                Step::Guess(a) => {
                    guesses[a] += 1;
                    let text = [EventKind::ChallengeSent, EventKind::ChallengeResponseFailed]
                        .map(|k| event(k, "1001", "TCP", ATTACKERS[a]))
                        .concat();
                    (text, Some(a))
                }
            };
            let banned = d.read(&text, now);
            // Pushed: the strong bans made now, and nothing else.
            let strong = banned.iter().filter(|b| b.evidence == Evidence::Strong).count();
            pushed += strong;
            prop_assert_eq!(d.pushed(), pushed, "pushed at step {}: {:?}", i, banned);
            let active = d.rig.bans.store().active().unwrap();
            for b in &active {
                let forged_only = FORGED.iter().chain([&PHONE]).any(|a| b.net.contains(&parse_net(a).unwrap().network()));
                if forged_only {
                    prop_assert!(crate::addr::is_host(&b.net), "{:?} spread", b);
                    prop_assert_eq!(b.evidence, Evidence::Weak, "{:?}", b);
                    prop_assert_eq!(b.count, 0, "{:?} was counted", b);
                    let ceiling = if b.net.network().to_string() == PHONE { 300 } else { 3600 };
                    prop_assert!(b.expires.is_some_and(|e| e - b.since <= ceiling), "{:?}", b);
                }
            }
            for held in d.rig.kernel.0.borrow().held.iter() {
                let covers = FORGED.iter().filter(|a| held.contains(&parse_net(a).unwrap().network())).count();
                prop_assert!(covers <= 1, "the kernel holds {} over forged sources", held);
            }
            // A real attacker is banned for good by its third wrong password, forged
            // packets from its address or not; the kernel holds it (alone or its /24).
            if let Some(a) = attacker.filter(|&a| guesses[a] >= 3) {
                let ip = parse_net(ATTACKERS[a]).unwrap().network();
                let strong_ban = active.iter().any(|b| {
                    b.net.contains(&ip) && b.evidence == Evidence::Strong && b.expires.is_none()
                });
                prop_assert!(
                    strong_ban,
                    "attacker {} after {} guesses: {:?}; waiting for the database: {}; the engine: {:?}",
                    ATTACKERS[a],
                    guesses[a],
                    active,
                    d.rig.bans.unstored(),
                    (d.judge.engine.penalty_of(ip, (now - T0) as u64), d.rig.bans.counters)
                );
                prop_assert!(d.rig.kernel.0.borrow().held.iter().any(|h| h.contains(&ip)));
            }
        }
    }
}
