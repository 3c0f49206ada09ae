//! Forged packets with the real kernel and a real LAPI: what the `pjsip-forged-source` and
//! `pjsip-forged-auth` captures show, for many addresses (three of one /24, and a
//! registered phone's), mixed with a real brute force over TCP from another /24. Nothing
//! forged reaches the kernel for good, no subnet of them appears, no alert of them reaches
//! LAPI; the TCP attackers are banned at their third wrong password, for good, and their
//! /24 escalates as before.

use super::*;

const PHONE: &str = "10.99.1.2";
const FORGED: [&str; 3] = ["198.51.100.50", "198.51.100.51", "198.51.100.52"];
const ATTACKERS: [&str; 3] = ["203.0.113.50", "203.0.113.51", "203.0.113.52"];

/// A real wrong password over TCP from `addr`: the challenge and the failed answer.
fn guess(p: &mut Pbx, addr: &str) {
    p.event("ChallengeSent", "TCP", addr, "1001");
    p.event("ChallengeResponseFailed", "TCP", addr, "1001");
}

#[test]
fn forged_packets_never_ban_for_good_spread_or_reach_lapi() {
    lapi::require();
    let net = Net::create(1);
    let lapi = Lapi::start(&net.lapi);
    lapi.add_pbx("pbx-a");
    let poll = Duration::from_secs(2);
    // Subnet escalation on, as by default (the test setup turns it off).
    let cfg = format!(
        "{}subnet_after = 3\n",
        pbx_config(&net.url(1), "pbx-a", poll)
    );
    let mut a = Pbx::start(&net.pbx[0], &cfg);
    // The phone registers (its success proves its address).
    a.event("SuccessfulAuth", "UDP", PHONE, "1001");
    // pjsip-forged-source: three unanswered challenges for 1001 "from" each of three
    // addresses of one /24, and from the phone's own address; one unknown user.
    for addr in FORGED.iter().chain([&PHONE]) {
        for _ in 0..3 {
            a.event("ChallengeSent", "UDP", addr, "1001");
        }
    }
    a.event("InvalidAccountID", "UDP", "198.51.100.60", "9999");
    a.event("ChallengeSent", "UDP", "198.51.100.60", "<unknown>");
    // pjsip-forged-auth: a made-up digest for 1001, then an unknown user's.
    a.event("ChallengeResponseFailed", "UDP", "198.51.100.70", "1001");
    a.event("InvalidAccountID", "UDP", "198.51.100.70", "9999");
    a.event(
        "ChallengeResponseFailed",
        "UDP",
        "198.51.100.70",
        "<unknown>",
    );

    // The real brute force: two wrong passwords leave the first attacker unbanned, the
    // third bans it.
    guess(&mut a, ATTACKERS[0]);
    guess(&mut a, ATTACKERS[0]);
    wait_for(10, "the forged bans", || {
        FORGED.iter().all(|f| a.in_kernel(f))
    });
    assert!(!a.in_kernel(ATTACKERS[0]), "banned before its third guess");
    guess(&mut a, ATTACKERS[0]);
    wait_for(10, "the attacker's ban", || a.in_kernel(ATTACKERS[0]));
    let el = a.element(ATTACKERS[0]).unwrap();
    assert!(!el.contains("timeout"), "not for good: {el}");
    // Two more attackers of its /24: the /24 (escalation as before), for good.
    for _ in 0..3 {
        guess(&mut a, ATTACKERS[1]);
        guess(&mut a, ATTACKERS[2]);
    }
    wait_for(10, "the /24", || a.element("203.0.113.0/24").is_some());
    assert!(!a.element("203.0.113.0/24").unwrap().contains("timeout"));

    // The forged sources: each in the kernel for an hour at most, alone.
    for f in FORGED {
        let el = a.element(f).unwrap_or_else(|| panic!("{f} not held"));
        assert!(el.contains("timeout 1h"), "{f}: {el}");
    }
    for never in ["198.51.100.0/24", PHONE, "198.51.100.60", "198.51.100.70"] {
        assert!(a.element(never).is_none(), "{never} is in the kernel");
    }
    let log = a.setup.log();
    for f in FORGED {
        assert!(
            log.contains(&format!("ban {f}: ChallengeSent from account `1001` (PJSIP), penalty 24; on evidence a forged packet can make")),
            "{log}"
        );
    }
    // LAPI: the three attackers and their /24, nothing forged.
    wait_for(20, "the alerts", || lapi.alerts().len() == 4);
    std::thread::sleep(poll * 2);
    let alerts = lapi.alerts();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    for al in &alerts {
        assert!(al.contains("203.0.113."), "{al}");
        assert!(!al.contains("198.51.100") && !al.contains(PHONE), "{al}");
    }
    let status = a.ampere(&["status"]);
    assert!(status.contains("crowdsec push: 4 pushed"), "{status}");
}
