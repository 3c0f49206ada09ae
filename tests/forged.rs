//! Forged source addresses (`pjsip-forged-source`, `pjsip-forged-auth`: single UDP packets
//! whose source is not the sender's, captured on a real Asterisk 22): neither `--replay`
//! nor the daemon bans anything for good, anything wider than one address, the registered
//! phone 10.99.1.2, or any address on one packet. With the default subnet escalation on.

mod common;

use std::collections::HashMap;

use common::*;

const CAPTURES: [&str; 2] = ["pjsip-forged-source.ami", "pjsip-forged-auth.ami"];

/// Security events per source address in a capture.
fn events_per_source(file: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for e in fixture_events(file, &[]) {
        let text = String::from_utf8(e).unwrap();
        if text.contains("Event: SuccessfulAuth") {
            continue;
        }
        if let Some(r) = text.lines().find_map(|l| l.strip_prefix("RemoteAddress: ")) {
            let addr = r.split('/').nth(2).unwrap().to_string();
            *n.entry(addr).or_insert(0) += 1;
        }
    }
    n
}

fn check(file: &str, bans: &[(String, Option<i64>)], by: &str) {
    let events = events_per_source(file);
    for (net, lasts) in bans {
        assert!(
            !net.contains('/'),
            "{file} ({by}): {net} is wider than one address"
        );
        assert_ne!(net, "10.99.1.2", "{file} ({by}): the registered phone");
        assert!(
            lasts.is_some_and(|l| l <= 3600),
            "{file} ({by}): {net} banned for {lasts:?}"
        );
        let n = events.get(net).copied().unwrap_or(0);
        assert!(n >= 2, "{file} ({by}): {net} banned on {n} event(s)");
    }
}

#[test]
fn forged_packets_never_ban_for_good_wide_a_phone_or_on_one_packet() {
    for file in CAPTURES {
        // --replay: `ban ADDRESS EVENT ACCOUNT PENALTY weak`.
        let setup = Setup::new(None, "subnet_after = 3\n");
        let path = fixture_dir().join(file);
        let (code, out, err) = setup.run(&["--replay", path.to_str().unwrap()], "");
        assert_eq!(code, 0, "{err}");
        let replayed: Vec<(String, Option<i64>)> = out
            .lines()
            .filter_map(|l| l.strip_prefix("ban "))
            .map(|l| {
                assert!(l.ends_with(" weak"), "{file}: {l}");
                (l.split(' ').next().unwrap().to_string(), Some(3600))
            })
            .collect();
        check(file, &replayed, "replay");

        // The daemon, with the capture played to it.
        let server = AmiServer::start(vec![Plan::Replay {
            file: file.into(),
            speed: 0.0,
        }]);
        let setup = Setup::new(Some(server.addr), "subnet_after = 3\n");
        let d = setup.spawn();
        wait_for(60, "the capture played", || {
            server.finished() >= 1 && server.accepted() > 1
        });
        assert_eq!(d.stop(), 0);
        let stored: Vec<(String, Option<i64>)> = ampere::store::Store::open(&setup.db)
            .unwrap()
            .active()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    ampere::addr::net_text(&b.net),
                    b.expires.map(|e| e - b.since),
                )
            })
            .collect();
        check(file, &stored, "daemon");
        let mut nets: Vec<&str> = stored.iter().map(|s| s.0.as_str()).collect();
        nets.sort();
        let mut want: Vec<&str> = replayed.iter().map(|s| s.0.as_str()).collect();
        want.sort();
        assert_eq!(nets, want, "{file}: the daemon and --replay");
        // The kernel (the recorder) holds exactly what is stored.
        let mut kernel: Vec<String> = setup
            .rec
            .bans()
            .into_iter()
            .map(|(_, n)| ampere::addr::net_text(&ampere::addr::parse_net(&n).unwrap()))
            .collect();
        kernel.sort();
        assert_eq!(kernel, nets, "{file}");
        if file == "pjsip-forged-source.ami" {
            // Three forged sources of one /24 reached the limit: no /24, and each at its
            // third challenge, not its first.
            assert_eq!(nets, ["198.51.100.50", "198.51.100.51", "198.51.100.52"]);
            assert!(!setup.log().contains("subnet of"), "{}", setup.log());
        } else {
            assert!(nets.is_empty(), "{nets:?}");
        }
    }
}
