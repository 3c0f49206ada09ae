//! The audit keeps Ampere's rules, not only its sets: a chain flushed with the sets intact, a
//! stray rule above the bans. Meanwhile `why` does not say the kernel drops what it lets
//! through; after the next audit the attacker is dropped again. And the admin's rule order
//! that lets an open UDP flow past the chain (an ESTABLISHED accept before the jump) is
//! reported, not changed.

use super::*;

/// What an admin or another tool does to the rules behind Ampere's back, per backend: each
/// fault lets the banned network's traffic through while the sets still hold the ban.
fn faults(backend: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    match backend {
        "iptables" => vec![
            (
                "a RETURN above the bans",
                vec!["iptables", "-w", "-I", "ampere", "1", "-j", "RETURN"],
            ),
            (
                "an ACCEPT above the bans",
                vec![
                    "iptables",
                    "-w",
                    "-I",
                    "ampere",
                    "1",
                    "-s",
                    "198.51.100.0/25",
                    "-j",
                    "ACCEPT",
                ],
            ),
        ],
        "ipset" => vec![
            (
                "a RETURN above the match rule",
                vec!["iptables", "-w", "-I", "ampere", "1", "-j", "RETURN"],
            ),
            (
                "the chain flushed, the sets intact",
                vec!["iptables", "-w", "-F", "ampere"],
            ),
        ],
        _ => vec![
            (
                "the input chain flushed, the sets intact",
                vec!["nft", "flush", "chain", "inet", "ampere", "input"],
            ),
            (
                "an accept above the drops",
                vec!["nft", "insert", "rule", "inet", "ampere", "input", "accept"],
            ),
        ],
    }
}

/// Sets `audit_interval` and reloads.
fn audit_every(pbx: &Pbx, d: &Daemon, interval: &str) {
    let cfg = std::fs::read_to_string(&pbx.setup.cfg).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("audit_interval"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &pbx.setup.cfg,
        format!("{cfg}audit_interval = {interval}\n"),
    )
    .unwrap();
    let reloads = pbx.setup.log().matches("config reloaded").count();
    d.signal("HUP");
    wait_for(5, "the reload", || {
        pbx.setup.log().matches("config reloaded").count() > reloads
    });
}

pub fn rules_scenario(backend: &str) {
    let pbx = Pbx::new(&format!("backend = {backend}\naudit_interval = 1h\n"));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let p = Prober::start_from(&format!("{PBX4}:5060"), Some(ATKNET4_ADDR));
    let (code, _, err) = pbx.setup.run(&["-a"], &format!("{ATKNET4}\n"));
    assert_eq!(code, 0, "{err}");
    wait_for(10, "the /24 dropped", || p.answered_within(200) == 0);
    let why = || pbx.setup.run(&["why", ATKNET4_ADDR], "").1;
    let w = why();
    assert!(w.contains("kernel: drops it"), "{w}");
    for (name, cmd) in faults(backend) {
        must(&cmd);
        wait_for(10, &format!("{name}: the attacker through"), || {
            p.answered_within(200) > 0
        });
        // The set still holds the ban: `why` answers from the rules.
        assert!(in_kernel(backend, ATKNET4), "{name}");
        let w = why();
        assert!(
            !w.contains("drops it") && w.contains("do NOT drop"),
            "{name}: {w}"
        );
        let broken = Instant::now();
        audit_every(&pbx, &d, "1");
        wait_for(10, &format!("{name}: repaired"), || {
            p.answered_within(200) == 0
        });
        println!(
            "measured: {backend}: {name}: the attacker dropped again {:.1} s after the audit was due every second",
            broken.elapsed().as_secs_f64()
        );
        audit_every(&pbx, &d, "1h");
        let w = why();
        assert!(w.contains("kernel: drops it"), "{name}: {w}");
        assert_eq!(kernel_bans(backend), BTreeSet::from([ATKNET4.to_string()]));
    }
    let (_, status, _) = pbx.setup.run(&["status"], "");
    assert!(!status.contains(" 0 repaired"), "{status}");
    assert!(pbx.setup.log().contains("made again as Ampere writes them"));

    // The admin's ESTABLISHED accept moved above the jumps: the open flow gets through.
    let est = [
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ];
    let with = |op: &str, at: Option<&str>| {
        let mut args = vec!["iptables", "-w", op, "INPUT"];
        args.extend(at);
        args.extend(est);
        must(&args);
    };
    with("-D", None);
    with("-I", Some("1"));
    audit_every(&pbx, &d, "1");
    if backend == "nft" {
        // Its own base chain drops whatever iptables accepts: nothing to warn of.
        assert_eq!(p.answered_within(1500), 0);
        assert!(!pbx.setup.log().contains("comes before the jump"));
    } else {
        wait_for(10, "the warning", || {
            pbx.setup
                .log()
                .contains("comes before the jump into `ampere`")
        });
        assert!(p.answered_within(400) > 0, "the open flow is let through");
        let (_, status, _) = pbx.setup.run(&["status"], "");
        assert!(
            status.contains("WARNING: iptables: INPUT rule 1"),
            "{status}"
        );
        let w = why();
        assert!(w.contains("comes before the jump"), "{w}");
        // Ampere never changes INPUT: the admin does, and the warning ends.
        with("-D", None);
        with("-A", None);
        wait_for(10, "the all clear", || {
            pbx.setup.log().contains("clean again")
        });
        wait_for(10, "dropped again", || p.answered_within(200) == 0);
    }
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_rules() {
    if inside().is_some() {
        rules_scenario(&backend());
    }
}
