//! Trust that comes after a network ban frees only what it trusts: a /24 that three
//! attackers escalated to, and a /64 of rotating addresses, lifted when a trusted address
//! inside them is added (SIGHUP): the networks around it are banned again, the attackers
//! stay dropped, the trusted address is answered.

use super::*;

/// Whether one of the kernel's entries takes in `addr`.
fn covered(backend: &str, addr: &str) -> bool {
    let ip: std::net::IpAddr = addr.parse().unwrap();
    kernel_bans(backend)
        .iter()
        .any(|n| ampere::addr::parse_net(n).unwrap().contains(&ip))
}

pub fn split_scenario(backend: &str) {
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nsubnet_after = 3\nipv6_prefix = 64\n"
    ));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    // Answered before any ban (a prober waits for its first answer).
    let p4 = Prober::start_from(&format!("{PBX4}:5060"), Some(ATKNET4_ADDR));
    let p6 = Prober::start_from(&format!("[{PBX6}]:5060"), Some(ATKNET6_ADDR));
    // Three attackers of the routed /24 (svmap's probes over TCP: strong evidence).
    for a in ["198.51.100.10", "198.51.100.11", "198.51.100.12"] {
        for e in fixture_events(
            "pjsip-svmap.ami",
            &[("UDP/203.0.113.2/", &format!("TCP/{a}/"))],
        ) {
            pbx.send(&e);
        }
    }
    // A /64 of rotating addresses, two guesses each over TCP.
    let rotation = |n: u32| format!("2001:db8:bad::1:{n:x}");
    for n in 0..3 {
        for kind in ["ChallengeSent", "ChallengeResponseFailed"] {
            for s in 0..2 {
                pbx.send(format!(
                    "Event: {kind}\r\nService: PJSIP\r\nAccountID: 1001\r\nSessionID: r{n}-{s}\r\nRemoteAddress: IPV6/TCP/{}/5060\r\n\r\n",
                    rotation(n)
                ).as_bytes());
            }
        }
    }
    wait_for(10, "the /24", || in_kernel(backend, ATKNET4));
    wait_for(10, "the /64", || in_kernel(backend, ATKNET6));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(p4.answered_within(400), 0, "the /24's address answered");
    assert_eq!(p6.answered_within(400), 0, "the /64's address answered");

    // The admin trusts one address of each, as the README says: a line and SIGHUP.
    let mut cfg = std::fs::read_to_string(&pbx.setup.cfg).unwrap();
    cfg.push_str(&format!("trust = {ATKNET4_ADDR}\ntrust = {ATKNET6_ADDR}\n"));
    std::fs::write(&pbx.setup.cfg, cfg).unwrap();
    d.signal("HUP");
    wait_for(10, "the trusted addresses answered", || {
        p4.answered_within(100) > 0 && p6.answered_within(100) > 0
    });
    // Everything else of the /24 and the /64 stays banned, the attackers first.
    for a in [
        "198.51.100.10",
        "198.51.100.11",
        "198.51.100.12",
        "198.51.100.200",
    ] {
        assert!(
            covered(backend, a),
            "{a} walked free: {:?}",
            kernel_bans(backend)
        );
    }
    for n in [0, 1, 2, 77] {
        assert!(
            covered(backend, &rotation(n)),
            "{} walked free",
            rotation(n)
        );
    }
    assert!(!covered(backend, ATKNET4_ADDR) && !covered(backend, ATKNET6_ADDR));
    let (_, why, _) = pbx.setup.run(&["why", "198.51.100.11"], "");
    assert!(why.contains("BANNED:") && why.contains("split"), "{why}");
    // The database says the same as the kernel.
    let stored: BTreeSet<String> = pbx.setup.stored().into_iter().collect();
    assert_eq!(stored, kernel_bans(backend));
    println!(
        "measured: {backend}: the /24 and the /64 split into {} networks around the two trusted addresses",
        stored.len()
    );
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_split() {
    if inside().is_some() {
        split_scenario(&backend());
    }
}
