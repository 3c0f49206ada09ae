//! The PBX's own networks are never one attacker: with the PBX on a global /64 (the link's
//! 2001:db8:a3e::/64, its address `PBX6`), a phone on that link with wrong passwords is
//! banned alone; events from the PBX's own addresses ban nothing; CrowdSec and `-a` are
//! refused them with a reason; an address added to the interface while Ampere runs is the
//! PBX's own within a minute.

use std::io::Write;
use std::net::TcpListener;

use super::*;

/// A phone on the PBX's own link (`2001:db8:a3e::50`).
const PHONE6: &str = "2001:db8:a3e::50";

/// Three wrong passwords (challenge and wrong answer each) from `addr`.
fn three_guesses(addr: &str) -> Vec<Vec<u8>> {
    let remote = if addr.contains(':') {
        format!("IPV6/UDP/{addr}/5060")
    } else {
        format!("IPV4/UDP/{addr}/5060")
    };
    (0..3)
        .flat_map(|i| {
            let s = format!("guess{i}@{addr}");
            ["ChallengeSent", "ChallengeResponseFailed"].map(|kind| {
                format!(
                    "Event: {kind}\r\nService: PJSIP\r\nAccountID: 1001\r\nSessionID: {s}\r\nRemoteAddress: {remote}\r\n\r\n"
                )
                .into_bytes()
            })
        })
        .collect()
}

/// A LAPI in this namespace that answers every pull with these decisions (value, scope).
fn lapi(decisions: &[(&str, &str)]) -> String {
    let list: Vec<String> = decisions
        .iter()
        .map(|(v, scope)| {
            format!(
                r#"{{"duration":"4h","origin":"cscli","scenario":"manual","scope":"{scope}","type":"ban","value":"{v}"}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"new":[{}],"deleted":[]}}"#, list.join(","));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            if request_head(&mut s).is_some() {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"
                );
            }
        }
    });
    addr
}

pub fn own_scenario(backend: &str) {
    let dev = std::env::var("AMPERE_NETNS_DEV").expect("set by the outer test");
    let lapi = lapi(&[
        (PBX6, "Ip"),
        (PBX4, "Ip"),
        ("2001:db8:a3e::/64", "Range"),
        ("192.0.2.0/24", "Range"),
        ("203.0.113.99", "Ip"),
    ]);
    // The default prefixes: IPv6 per /64, so the phone's /64 would be one attacker but for
    // the PBX's own link.
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nipv6_prefix = 64\ncrowdsec_url = http://{lapi}\ncrowdsec_bouncer_key = k\ncrowdsec_poll = 1\n"
    ));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    // CrowdSec: the PBX's own addresses and links refused, each with its reason; the rest
    // banned.
    wait_for(20, "the pull", || in_kernel(backend, "203.0.113.99"));
    let log = pbx.setup.log();
    for (what, why) in [
        (
            PBX6,
            "is, or takes in, the PBX's own address 2001:db8:a3e::1",
        ),
        (PBX4, "is, or takes in, the PBX's own address 192.0.2.1"),
        ("2001:db8:a3e::/64", "the PBX's own address 2001:db8:a3e::1"),
        ("192.0.2.0/24", "the PBX's own address 192.0.2.1"),
    ] {
        assert!(
            log.contains(&format!(
                "CrowdSec decision to ban {what} (manual, origin cscli) refused: it"
            )) && log.contains(why),
            "{what}: {log}"
        );
    }

    // The phone on the link: three wrong passwords ban its address, not the link.
    for e in three_guesses(PHONE6) {
        pbx.send(&e);
    }
    wait_for(10, "the phone's ban", || in_kernel(backend, PHONE6));
    // The PBX's own addresses: as many failures as they like, nothing.
    for a in [PBX4, PBX6] {
        for _ in 0..3 {
            for e in three_guesses(a) {
                pbx.send(&e);
            }
        }
    }
    // A marker after them on the same stream: when it is banned, they were judged.
    for e in three_guesses("203.0.113.98") {
        pbx.send(&e);
    }
    wait_for(10, "the marker's ban", || {
        in_kernel(backend, "203.0.113.98")
    });
    assert_eq!(
        kernel_bans(backend),
        BTreeSet::from([
            PHONE6.to_string(),
            "203.0.113.98".to_string(),
            "203.0.113.99".to_string()
        ])
    );
    let log = pbx.setup.log();
    assert!(
        !log.contains("info: ban 2001:db8:a3e::/64") && !log.contains(&format!("info: ban {PBX4}")),
        "{log}"
    );

    // `-a`: refused, with the reason.
    for (net, why) in [
        (PBX4, "is, or takes in, the PBX's own address 192.0.2.1"),
        ("2001:db8:a3e::/64", "the PBX's own address 2001:db8:a3e::1"),
    ] {
        let (code, _, err) = pbx.setup.run(&["-a"], &format!("{net}\n"));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(why), "{net}: {err}");
    }
    // `why` says so, and since when.
    let (_, out, _) = pbx.setup.run(&["why", PBX4], "");
    assert!(
        out.contains(&format!("the PBX's own: its address on {dev}")),
        "{out}"
    );
    let (_, out, _) = pbx.setup.run(&["why", PHONE6], "");
    assert!(
        out.contains("on the PBX's own link 2001:db8:a3e::/64") && out.contains("BANNED"),
        "{out}"
    );
    let (_, status, _) = pbx.setup.run(&["status"], "");
    assert!(
        status.contains(&format!("own:      addresses {dev} 192.0.2.1")),
        "{status}"
    );

    // An address added while Ampere runs is the PBX's own within a minute.
    let added = "2001:db8:a3e::77";
    must(&[
        "ip",
        "addr",
        "add",
        &format!("{added}/64"),
        "dev",
        &dev,
        "nodad",
    ]);
    let t = Instant::now();
    // `status` is the daemon's own view (`why` alone reads the interfaces itself).
    wait_for(60, "the new address protected", || {
        pbx.setup.run(&["status"], "").1.contains(added)
    });
    assert!(pbx.setup.log().contains("the PBX's own networks changed"));
    println!(
        "measured: {backend}: an address added to {dev} was the PBX's own after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for e in three_guesses(added) {
        pbx.send(&e);
    }
    for e in three_guesses("203.0.113.97") {
        pbx.send(&e);
    }
    wait_for(10, "the second marker's ban", || {
        in_kernel(backend, "203.0.113.97")
    });
    assert!(!in_kernel(backend, added));
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_own() {
    if inside().is_some() {
        own_scenario(&backend());
    }
}
