//! Attackers are networks: the real kernel drops a whole IPv6 /64 after its addresses took
//! turns, and never one that takes in a trusted address.

use super::*;

/// The events PJSIP sent for one address's two wrong-password REGISTERs (challenge, wrong
/// answer, twice) in the `pjsip-ipv6-rotation` capture, from `addr` instead, over TCP: the
/// capture's UDP is weak evidence, which never bans a /64 (`score::Evidence`).
fn two_guesses_from(addr: &str) -> Vec<Vec<u8>> {
    let from = "IPV6/UDP/2001:db8:99::100/";
    let to = format!("IPV6/TCP/{addr}/");
    let events: Vec<Vec<u8>> = fixture_events("pjsip-ipv6-rotation.ami", &[(from, &to)])
        .into_iter()
        .filter(|e| String::from_utf8_lossy(e).contains(&to))
        .collect();
    assert_eq!(events.len(), 4, "two challenges and two wrong answers");
    events
}

/// The nth of the 1,000 attacking addresses: all in the attacker's routed /64
/// (`ATKNET6`), none of them the prober's `ATKNET6_ADDR`.
fn rotating(n: u32) -> String {
    format!("2001:db8:bad::1:{n:x}")
}

const ATK_64: &str = ATKNET6;

/// First with trust on the prober's address in the attacker's /64: the /64 is scored
/// address by address, 1,000 addresses with two guesses each ban nobody, a third guess bans
/// that one address alone, and the trusted prober is answered throughout. Then the trust
/// line goes (SIGHUP): another 1,000 addresses end in one /64 ban, and the prober, which
/// sent no event at all, is dropped.
pub fn prefix_scenario(backend: &str) {
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nipv6_prefix = 64\ntrust = {ATKNET6_ADDR}\n"
    ));
    let mut d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start_from(&format!("[{PBX6}]:5060"), Some(ATKNET6_ADDR));
    for n in 0..1000 {
        for e in two_guesses_from(&rotating(n)) {
            pbx.send(&e);
        }
    }
    // The third guess of one address.
    for e in &two_guesses_from(&rotating(7))[2..] {
        pbx.send(e);
    }
    wait_for(20, "the single ban", || in_kernel(backend, &rotating(7)));
    // Everything sent before the third guess has been judged by now.
    assert_eq!(kernel_bans(backend), BTreeSet::from([rotating(7)]));
    assert_eq!(pbx.setup.stored(), [rotating(7)]);
    assert!(
        prober.answered_within(400) > 0,
        "the trusted address is dropped"
    );
    let log = pbx.setup.log();
    assert_eq!(
        log.matches(&format!("{ATK_64} takes in the protected {ATKNET6_ADDR}"))
            .count(),
        1,
        "{log}"
    );

    let cfg = std::fs::read_to_string(&pbx.setup.cfg).unwrap();
    std::fs::write(
        &pbx.setup.cfg,
        cfg.replace(&format!("trust = {ATKNET6_ADDR}\n"), ""),
    )
    .unwrap();
    d.signal("HUP");
    wait_for(10, "the reload", || {
        pbx.setup.log().contains("config reloaded")
    });
    for n in 1000..2000 {
        for e in two_guesses_from(&rotating(n)) {
            pbx.send(&e);
        }
    }
    wait_for(20, "the /64 ban", || in_kernel(backend, ATK_64));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prober.answered_within(600),
        0,
        "a fresh address of the banned /64 is still answered"
    );
    assert!(d.is_running());
    assert_eq!(d.stop(), 0);
    // One kernel entry for the /64, whatever its 1,000 addresses sent after it.
    assert_eq!(
        kernel_bans(backend),
        BTreeSet::from([rotating(7), ATK_64.to_string()])
    );
    let mut stored = pbx.setup.stored();
    stored.sort();
    assert_eq!(stored, [ATK_64.to_string(), rotating(7)]);
    let log = pbx.setup.log();
    assert_eq!(log.matches(&format!("ban {ATK_64}:")).count(), 1, "{log}");
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_prefix() {
    if inside().is_some() {
        prefix_scenario(&backend());
    }
}

/// Three attackers of one /24 banned within findtime (svmap's probes over TCP: strong
/// evidence): the /24 takes their place (one kernel entry), a fresh address of it
/// (`ATK4`, which sent no event) is dropped, and a ban in another /24 stays as it was.
pub fn subnet_scenario(backend: &str) {
    let pbx = Pbx::new(&format!("backend = {backend}\nsubnet_after = 3\n"));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start_from(&format!("{PBX4}:5060"), Some(ATKNET4_ADDR));
    for a in ["203.0.113.9", "198.51.100.10", "198.51.100.11"] {
        for e in fixture_events(
            "pjsip-svmap.ami",
            &[("UDP/203.0.113.2/", &format!("TCP/{a}/"))],
        ) {
            pbx.send(&e);
        }
    }
    wait_for(10, "the first bans", || in_kernel(backend, "198.51.100.11"));
    assert!(
        prober.answered_within(300) > 0,
        "dropped before the subnet ban"
    );
    for e in fixture_events(
        "pjsip-svmap.ami",
        &[("UDP/203.0.113.2/", "TCP/198.51.100.12/")],
    ) {
        pbx.send(&e);
    }
    wait_for(10, "the subnet ban", || in_kernel(backend, ATKNET4));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prober.answered_within(600),
        0,
        "a fresh address of the banned /24 is still answered"
    );
    assert_eq!(d.stop(), 0);
    assert_eq!(
        kernel_bans(backend),
        BTreeSet::from([ATKNET4.to_string(), "203.0.113.9".to_string()])
    );
    let mut stored = pbx.setup.stored();
    stored.sort();
    assert_eq!(stored, ["198.51.100.0/24", "203.0.113.9"]);
    let (code, out, err) = pbx.setup.run(&["-l"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("subnet (3 bans folded in)"), "{out}");
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_subnet() {
    if inside().is_some() {
        subnet_scenario(&backend());
    }
}

/// fw4 (OpenWrt) and firewalld (nftables backend) own one table each and reload by loading
/// it again: a ruleset that deletes and rebuilds `inet fw4`, whose input chain accepts SIP.
/// Ampere's table, its bans and its drop stay.
pub fn coexist_scenario() {
    let pbx = Pbx::new("backend = nft\n");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let prober = Prober::start(&format!("{PBX4}:5060"));
    let fw4 = "table inet fw4\ndelete table inet fw4\ntable inet fw4 {\n  chain input {\n    type filter hook input priority filter; policy drop;\n    iif lo accept\n    ct state established,related accept\n    udp dport 5060 accept\n  }\n}\n";
    let path = pbx.setup.dir.path().join("fw4.nft");
    std::fs::write(&path, fw4).unwrap();
    must(&["nft", "-f", path.to_str().unwrap()]);
    assert!(
        prober.answered_within(300) > 0,
        "the stand-in for fw4 drops SIP"
    );
    for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
        pbx.send(&e);
    }
    wait_for(10, "the ban", || in_kernel("nft", ATK4));
    // `fw4 reload`, twice, and a flush of the other table (firewalld's reload).
    must(&["nft", "-f", path.to_str().unwrap()]);
    must(&["nft", "flush", "table", "inet", "fw4"]);
    must(&["nft", "-f", path.to_str().unwrap()]);
    assert!(
        in_kernel("nft", ATK4),
        "the reload of another table took the ban"
    );
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prober.answered_within(600),
        0,
        "the other table's accept let the banned attacker in"
    );
    assert_eq!(d.stop(), 0);
    must(&["nft", "delete", "table", "inet", "fw4"]);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see another_tables_reload_leaves_the_nft_bans)"]
fn inner_coexist() {
    if inside().is_some() {
        coexist_scenario();
    }
}
