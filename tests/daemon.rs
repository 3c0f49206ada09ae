//! The real `ampere` binary against a test AMI server on loopback that replays the real
//! Asterisk captures; firewall commands go to a recorder, bans to a real SQLite file.

mod common;

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// The bans `../shared/fixtures/ami/README.md` lists for each capture with loyalty = 3, with
/// Ampere's own rules where they differ from the original's weights (README, "How it scores"):
/// pjsip-challenge also bans the scanner whose one probe named an unknown account.
/// What each capture bans: a network, and ` weak` when the ban rests on evidence a forged
/// packet can make (`score::Evidence`: temporary, at most `weak_bantime`, never spread).
/// Every PJSIP capture is UDP: its bans are weak, and a scanner's single probe bans nothing.
const EXPECTED: &[(&str, &[&str])] = &[
    ("pjsip-wrong-password.ami", &["10.99.1.2 weak"]),
    ("pjsip-unknown-user.ami", &["203.0.113.2 weak"]),
    ("pjsip-unknown-user-authusername.ami", &["203.0.113.2 weak"]),
    // At the second probe (4 events); before, at the first.
    ("pjsip-svmap.ami", &["203.0.113.2 weak"]),
    ("pjsip-svwar.ami", &["203.0.113.2 weak"]),
    ("pjsip-acl.ami", &["203.0.113.2 weak"]),
    ("pjsip-success.ami", &[]),
    // 203.0.113.2's one probe (9 points) no longer bans: one packet can be forged.
    ("pjsip-challenge.ami", &["10.99.1.2 weak"]),
    // A success for the attacker's own account does not wipe its guesses against another;
    // it logged in, so its ban is `weak_known_bantime` (5 min), loudly.
    ("pjsip-reset-abuse.ami", &["10.99.1.2 weak"]),
    // A registered phone's unanswered keepalive challenges are not an attack.
    ("pjsip-options-keepalive.ami", &[]),
    // SessionLimit counts like a failed AMI login: 3 + 12 = 15. AMI is TCP: strong.
    ("ami-sessionlimit.ami", &["203.0.113.2"]),
    // The 20 addresses of one /64 share a penalty (`ipv6_prefix = 64`), but weak evidence
    // bans only the address whose event reached the limit, never the /64.
    (
        "pjsip-ipv6-rotation.ami",
        &[
            "2001:db8:99::101 weak",
            "2001:db8:99::102 weak",
            "2001:db8:99::104 weak",
            "2001:db8:99::105 weak",
            "2001:db8:99::107 weak",
            "2001:db8:99::108 weak",
            "2001:db8:99::10a weak",
            "2001:db8:99::10b weak",
            "2001:db8:99::10d weak",
            "2001:db8:99::10e weak",
            "2001:db8:99::110 weak",
            "2001:db8:99::111 weak",
            "2001:db8:99::113 weak",
        ],
    ),
    ("timestampevents.ami", &["203.0.113.2 weak"]),
    ("eventfilter.ami", &["203.0.113.2 weak"]),
    ("pjsip-flood.ami", &["203.0.113.2 weak"]),
    ("ipv6.ami", &["2001:db8:99::2 weak"]),
    ("ami-bad-login.ami", &[]),
    ("reload.ami", &[]),
    ("kill9.ami", &[]),
    // Forged sources: three unanswered challenges each for .50, .51, .52 (as many events as
    // a guesser needs: an hour each), one packet for .60 (nothing), the registered phone's
    // address (its own account's challenges: free). No /24.
    (
        "pjsip-forged-source.ami",
        &[
            "198.51.100.50 weak",
            "198.51.100.51 weak",
            "198.51.100.52 weak",
        ],
    ),
    ("pjsip-forged-auth.ami", &[]),
    // Five REGISTERs with the right password, each refused by the registrar's contact
    // limit right after its success: Asterisk's configuration, not an attack (before, the
    // phone was banned for good at the 4th).
    ("pjsip-max-contacts.ami", &[]),
    // Asterisk 20.20.1, chan_sip (`ami-asterisk20` in ../shared): a call is challenged as
    // the From URI and succeeds as the dialled extension; nobody is banned for calling.
    ("sip-phone-calls-5060.ami", &[]),
    ("sip-keepalive.ami", &[]),
    ("sip-success-after-failures.ami", &[]),
    // svwar's unanswered challenges ban it for an hour before svcrack starts; svcrack's
    // answers carry chan_sip's own nonce (strong): that ban takes the weak one's place.
    // (On a real kernel svcrack would be dropped for that hour first.)
    ("sip-udp-svwar-svcrack.ami", &["203.0.113.2"]),
    ("sip-authreject-no.ami", &["203.0.113.2 weak"]),
];

/// An `EXPECTED` entry: the network's text, and whether the ban is weak.
fn expected_ban(e: &str) -> (String, bool) {
    match e.strip_suffix(" weak") {
        Some(net) => (net.to_string(), true),
        None => (e.to_string(), false),
    }
}

/// Replays `plans`, waits until every plan was played and ampere came back for one more
/// connection (so it has read everything up to the EOF), stops it and returns the setup.
fn run_scenario(plans: Vec<Plan>, bind: &str, extra: &str) -> (Setup, AmiServer) {
    let n = plans.len();
    let server = AmiServer::start_on(bind, plans, Duration::ZERO);
    let setup = Setup::new(Some(server.addr), extra);
    let d = setup.spawn();
    // A guard against hangs, not a timing check: under qemu the flood takes a while.
    let end = Instant::now() + Duration::from_secs(180);
    while !(server.finished() >= n && server.accepted() > n) {
        if Instant::now() > end {
            let log = setup.log();
            let lines: Vec<&str> = log.lines().collect();
            let head = lines
                .iter()
                .take(15)
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            panic!(
                "timed out: {} of {n} plans played, {} connections; log:\n{head}\n...\n{tail}",
                server.finished(),
                server.accepted(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(d.stop(), 0, "log:\n{}", setup.log());
    (setup, server)
}

/// What the kernel holds at the end (the recorder's), as network texts (an address
/// without its length).
fn ban_addrs(setup: &Setup) -> Vec<String> {
    let mut v: Vec<String> = setup
        .rec
        .held()
        .into_iter()
        .map(|(tool, net)| {
            let v6 = net.contains(':');
            assert_eq!(tool, if v6 { "ip6tables" } else { "iptables" }, "{net}");
            ampere::addr::net_text(&ampere::addr::parse_net(&net).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// The active bans in the database: (network, weak, expires).
fn stored_bans(setup: &Setup) -> Vec<(String, bool, Option<i64>)> {
    let mut v: Vec<_> = ampere::store::Store::open(&setup.db)
        .unwrap()
        .active()
        .unwrap()
        .iter()
        .map(|b| {
            (
                ampere::addr::net_text(&b.net),
                b.evidence == ampere::score::Evidence::Weak,
                b.expires.map(|e| e - b.since),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_capture_bans_exactly_the_expected_hosts() {
    let only = std::env::var("AMPERE_TEST_CAPTURE").ok();
    let handles: Vec<_> = EXPECTED
        .iter()
        .filter(|(file, _)| only.as_deref().is_none_or(|o| o == *file))
        .map(|&(file, expected)| {
            std::thread::spawn(move || {
                let bind = if file == "ipv6.ami" {
                    "[::1]:0"
                } else {
                    "127.0.0.1:0"
                };
                let plan = Plan::Replay {
                    file: file.into(),
                    speed: 0.05,
                };
                let (setup, _server) = run_scenario(vec![plan], bind, "");
                let mut want: Vec<(String, bool)> =
                    expected.iter().map(|e| expected_ban(e)).collect();
                want.sort();
                let nets: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
                assert_eq!(
                    ban_addrs(&setup),
                    nets,
                    "{file}: firewall bans\n{}",
                    setup.log()
                );
                let stored = stored_bans(&setup);
                let log = setup.log();
                for ((net, weak), (s_net, s_weak, lasts)) in want.iter().zip(&stored) {
                    assert_eq!((net, weak), (s_net, s_weak), "{file}: stored {stored:?}");
                    // Weak: an hour at most, or 5 min for a host that logged in before;
                    // strong: the default config's permanent ban.
                    match weak {
                        true => {
                            assert!(matches!(lasts, Some(300 | 3600)), "{file}: {net} {lasts:?}")
                        }
                        false => assert_eq!(*lasts, None, "{file}: {net}"),
                    }
                    // The last ban line of the network (a strong ban replaces a weak one).
                    let line = log
                        .lines()
                        .rfind(|l| l.contains(&format!("ban {net}:")))
                        .unwrap_or_else(|| panic!("{file}: no log line for {net}\n{log}"));
                    assert_eq!(
                        line.contains("on evidence a forged packet can make"),
                        *weak,
                        "{file}: {line}"
                    );
                }
                assert_eq!(stored.len(), want.len(), "{file}: stored {stored:?}");
            })
        })
        .collect();
    let mut failed = Vec::new();
    let files = EXPECTED
        .iter()
        .filter(|(file, _)| only.as_deref().is_none_or(|o| o == *file));
    for (h, (file, _)) in handles.into_iter().zip(files) {
        if let Err(e) = h.join() {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{file}: {msg}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn replay_mode_prints_the_same_bans_as_the_daemon() {
    let setup = Setup::new(None, "");
    replay_gives(&setup, EXPECTED);
    // Replay never touches the firewall or the database.
    assert!(setup.rec.calls().is_empty());
    assert!(!setup.db.exists());
}

#[test]
fn per_address_scoring_gives_the_bans_of_before_prefixes() {
    // `ipv6_prefix = 128` is how Ampere scored before prefix scoring: the IPv6 captures
    // ban the address, and the rotation through a /64 bans nothing.
    let setup = Setup::new(None, "ipv6_prefix = 128\n");
    let before: Vec<(&str, &[&str])> = EXPECTED
        .iter()
        .map(|&(file, bans)| match file {
            "ipv6.ami" => (file, &["2001:db8:99::2 weak"][..]),
            "pjsip-ipv6-rotation.ami" => (file, &[][..]),
            _ => (file, bans),
        })
        .collect();
    replay_gives(&setup, &before);
}

/// `--replay` of each capture prints exactly its expected bans.
fn replay_gives(setup: &Setup, expected: &[(&str, &[&str])]) {
    for &(file, expected) in expected {
        let path = fixture_dir().join(file);
        let (code, out, err) = setup.run(&["--replay", path.to_str().unwrap()], "");
        assert_eq!(code, 0, "{file}: {err}");
        // A network printed weak and then strong (the daemon replaces the ban): strong.
        let mut last: Vec<(String, bool)> = Vec::new();
        for l in out.lines().filter_map(|l| l.strip_prefix("ban ")) {
            let net = l.split(' ').next().unwrap().to_string();
            last.retain(|(n, _)| *n != net);
            last.push((net, l.ends_with(" weak")));
        }
        let mut got: Vec<String> = last
            .into_iter()
            .map(|(net, weak)| if weak { format!("{net} weak") } else { net })
            .collect();
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{file}:\n{out}");
        assert!(
            out.lines().last().unwrap().starts_with("summary: "),
            "{out}"
        );
    }
}

#[test]
fn start_checks_chains_flushes_and_restores_in_one_batch() {
    let setup = Setup::new(None, "port = 1\n");
    {
        let mut s = ampere::store::Store::open(&setup.db).unwrap();
        for a in ["192.0.2.10", "2001:db8::10", "198.51.100.0/24"] {
            let net = ampere::addr::parse_net(a).unwrap();
            let ban = ampere::ban::BanRequest::new(
                net,
                ampere::ban::Origin::Manual,
                "manual",
                1,
                ampere::ban::Lifetime::Permanent,
            );
            s.record(&[ban], &|_, _| None).unwrap();
        }
    }
    let d = setup.spawn();
    wait_for(10, "restore", || {
        setup
            .rec
            .calls()
            .iter()
            .filter(|c| c.cmd.ends_with("-restore"))
            .count()
            >= 2
    });
    assert_eq!(d.stop(), 0);
    // Listings (`-S`) only read: the chain as written, for the audit, and INPUT's path into
    // it. What changes the kernel is one restore per family.
    let all = setup.rec.calls();
    let calls: Vec<_> = all
        .iter()
        .filter(|c| c.args.get(1).map(String::as_str) != Some("-S") || c.args.len() == 4)
        .collect();
    let names: Vec<&str> = calls.iter().map(|c| c.cmd.as_str()).collect();
    assert_eq!(
        names,
        [
            "iptables",
            "ip6tables",
            "iptables-restore",
            "ip6tables-restore"
        ]
    );
    assert_eq!(calls[0].args, ["-w", "-S", "ampere", "1"]);
    assert_eq!(calls[2].args, ["-w", "--noflush"]);
    assert_eq!(
        calls[2].stdin,
        "*filter\n-F ampere\n-A ampere -s 192.0.2.10/32 -j DROP\n-A ampere -s 198.51.100.0/24 -j DROP\nCOMMIT\n"
    );
    assert_eq!(
        calls[3].stdin,
        "*filter\n-F ampere\n-A ampere -s 2001:db8::10/128 -j DROP\nCOMMIT\n"
    );
    let listed: Vec<String> = all
        .iter()
        .filter(|c| c.args.len() == 3 && c.args[1] == "-S")
        .map(|c| format!("{} {}", c.cmd, c.args[2]))
        .collect();
    assert_eq!(
        listed,
        [
            "iptables ampere",
            "ip6tables ampere",
            "iptables INPUT",
            "ip6tables INPUT"
        ]
    );
}

#[test]
fn missing_chain_is_a_clear_error_with_the_commands() {
    let setup = Setup::new(None, "chain = pbxban\n");
    setup.rec.fail("ip6tables", true);
    let d = setup.spawn();
    wait_for(10, "exit", || {
        !setup.log().is_empty() && setup.log().contains("ip6tables -N")
    });
    let mut d = d;
    wait_for(10, "exit", || !d.is_running());
    let log = setup.log();
    assert!(
        log.contains("chain `pbxban` not usable with ip6tables"),
        "{log}"
    );
    assert!(log.contains("ip6tables -N pbxban"), "{log}");
    assert!(
        log.contains("ip6tables -I INPUT -p udp -m multiport --dports 5060,4569 -j pbxban"),
        "{log}"
    );
    assert!(!log.contains("iptables -N pbxban\n"), "{log}");
    // Nothing was flushed.
    assert!(setup
        .rec
        .calls()
        .iter()
        .all(|c| !c.cmd.ends_with("-restore")));
}

#[test]
fn reconnects_after_eof_mid_stream_and_bans_afterwards() {
    let plans = vec![
        Plan::Truncated {
            file: "pjsip-wrong-password.ami".into(),
            bytes: 2000,
        },
        Plan::Replay {
            file: "pjsip-svmap.ami".into(),
            speed: 0.0,
        },
    ];
    let (setup, _s) = run_scenario(plans, "127.0.0.1:0", "");
    assert_eq!(ban_addrs(&setup), ["203.0.113.2"]);
    let log = setup.log();
    assert!(log.contains("AMI connection lost"), "{log}");
    assert!(log.contains("(reconnected)"), "{log}");
}

#[test]
fn reconnects_after_shutdown_event_and_reset_connections() {
    // `core restart now`: Shutdown event + EOF, a reset connection during the restart, then
    // the new Asterisk; then an attack after the restart.
    let plans = vec![
        Plan::Replay {
            file: "restart.ami".into(),
            speed: 0.0,
        },
        Plan::Reset,
        Plan::Replay {
            file: "restart.reconnect2.ami".into(),
            speed: 0.0,
        },
        Plan::Replay {
            file: "pjsip-unknown-user.ami".into(),
            speed: 0.0,
        },
    ];
    let (setup, server) = run_scenario(plans, "127.0.0.1:0", "");
    assert_eq!(ban_addrs(&setup), ["203.0.113.2"]);
    let log = setup.log();
    assert!(
        log.contains("Asterisk is shutting down (Restart: True)"),
        "{log}"
    );
    assert!(log.contains("Asterisk is fully booted"), "{log}");
    // every connection but the reset one started with a proper Login
    assert_eq!(server.received(1), "");
    for i in [0, 2, 3] {
        assert!(server.received(i).starts_with("Action: Login\r\n"), "{i}");
    }
}

#[test]
fn detects_a_dead_connection_by_unanswered_ping() {
    let plans = vec![
        Plan::ReplayThenSilent {
            file: "kill9.ami".into(),
        },
        Plan::Replay {
            file: "pjsip-svwar.ami".into(),
            speed: 0.0,
        },
    ];
    let (setup, server) = run_scenario(
        plans,
        "127.0.0.1:0",
        "ping_interval = 1\nping_timeout = 1\n",
    );
    assert!(
        server.received(0).contains("Action: Ping\r\n"),
        "no Ping sent"
    );
    let log = setup.log();
    assert!(log.contains("no answer to Ping within 1s"), "{log}");
    assert_eq!(ban_addrs(&setup), ["203.0.113.2"]);
}

#[test]
fn answered_pings_keep_the_connection() {
    let server = AmiServer::start(vec![Plan::Custom(Vec::new())]);
    let setup = Setup::new(Some(server.addr), "ping_interval = 1\nping_timeout = 1\n");
    let d = setup.spawn();
    wait_for(10, "three pings", || {
        server.received(0).matches("Action: Ping").count() >= 3
    });
    assert_eq!(
        server.accepted(),
        1,
        "reconnected although Pings were answered"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn refused_connections_back_off_without_burning_cpu() {
    let plans = vec![Plan::Replay {
        file: "pjsip-svmap.ami".into(),
        speed: 0.0,
    }];
    let server = AmiServer::start_on("127.0.0.1:0", plans, Duration::from_secs(5));
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    // Measured once the start's own work is done (its first refused connect logged): under
    // qemu-user the start's one-off work (the first forgetting of old rows among it) fell
    // into the window, 8 ticks on MIPS.
    wait_for(10, "the first refused connect", || {
        setup.log().contains("cannot connect to AMI")
    });
    let before = d.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let used = d.cpu_ticks() - before;
    // 3 s of waiting with a few connect attempts: well under 50 ms of CPU (5 ticks).
    assert!(used <= 5, "{used} ticks of CPU while waiting");
    wait_for(20, "the ban after the server came up", || {
        !setup.rec.bans().is_empty()
    });
    assert_eq!(d.stop(), 0);
    let log = setup.log();
    // Not the OS's wording: under qemu-user for MIPS, getsockopt(SO_ERROR) hands back the
    // host's errno untranslated (111, where MIPS's ECONNREFUSED is 146).
    assert!(log.contains("cannot connect to AMI at 127.0.0.1:"), "{log}");
    // The address once, not `127.0.0.1:5038: 127.0.0.1:5038: …`.
    let a = server.addr.to_string();
    assert!(!log.contains(&format!("{a}: {a}")), "{log}");
    // backoff doubled: 1 s, then 2 s (reconnect_max)
    assert!(
        log.contains("retrying in 1s") && log.contains("retrying in 2s"),
        "{log}"
    );
    assert_eq!(ban_addrs(&setup), ["203.0.113.2"]);
}

#[test]
fn rejected_login_is_explained_and_retried() {
    let plans = vec![
        Plan::RejectLogin,
        Plan::Replay {
            file: "pjsip-wrong-password.ami".into(),
            speed: 0.0,
        },
    ];
    let (setup, server) = run_scenario(plans, "127.0.0.1:0", "user = pbxguard\n");
    let log = setup.log();
    assert!(log.contains("AMI login as `pbxguard` refused"), "{log}");
    assert!(log.contains("Authentication failed"), "{log}");
    assert!(
        log.contains("[pbxguard] section of /etc/asterisk/manager.conf"),
        "{log}"
    );
    assert!(server
        .received(0)
        .contains("Username: pbxguard\r\nSecret: 123\r\nEvents: security,system\r\n"));
    assert_eq!(ban_addrs(&setup), ["10.99.1.2"]);
}

#[test]
fn hostile_input_never_crashes_and_only_parsed_addresses_reach_iptables() {
    let mut s = Vec::new();
    // values with ": ", a Response: Error inside an event
    for _ in 0..15 {
        s.extend(crf(
            "IPV4/TCP/198.51.100.7/5060",
            "a: b: $(reboot); `id` | rm -rf / & x",
        ));
    }
    // 100 KB line, then 10,000 headers, NUL bytes and invalid UTF-8
    s.extend_from_slice(b"Event: InvalidPassword\r\nJunk: ");
    s.extend(std::iter::repeat_n(b'A', 100_000));
    s.extend_from_slice(b"\r\n\r\n");
    s.extend_from_slice(b"Event: FailedACL\r\n");
    for i in 0..10_000 {
        s.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(b"Event: ChallengeResponseFailed\r\nService: PJSIP\r\nAccountID: \0\xff\xfe\x1b[2J\r\nRemoteAddress: IPV4/TCP/198.51.100.8/5060\r\n\r\n");
    // RemoteAddress garbage and metacharacters: ignored
    for bad in [
        "IPV4/TCP/1.2.3.4;touch /tmp/ampere-pwned/5060",
        "IPV4/TCP/$(id)/5060",
        "IPV4/TCP/`id`/5060",
        "IPV4/TCP/-j ACCEPT/5060",
        "IPV6/TCP/203.0.113.9/5060",
        "garbage",
    ] {
        for _ in 0..20 {
            s.extend(crf(bad, "x"));
        }
    }
    // truncated message merged into the next (no blank line), then sync resumes
    s.extend_from_slice(
        b"Event: ChallengeResponseFailed\r\nRemoteAddress: IPV4/TCP/198.51.100.9/5060\r\n",
    );
    // variants that are valid: 3 segments, IPv6, IPv4-mapped (the truncated message above
    // swallows the first of these events)
    for _ in 0..16 {
        s.extend(crf("IPV4/198.51.100.10/5060", "1"));
        s.extend(crf("IPV6/TCP/2001:db8:bad::1/5060", "1"));
        s.extend(crf("IPV6/TCP/::ffff:198.51.100.11/5060", "1"));
    }
    let server = AmiServer::start(vec![Plan::Custom(s)]);
    let setup = Setup::new(Some(server.addr), "");
    let mut d = setup.spawn();
    wait_for(20, "bans", || setup.rec.bans().len() >= 4);
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.is_running(), "ampere died:\n{}", setup.log());
    assert_eq!(d.stop(), 0);
    assert_eq!(
        ban_addrs(&setup),
        [
            "198.51.100.10",
            "198.51.100.11",
            "198.51.100.7",
            "2001:db8:bad::/64"
        ]
    );
    // every argument vector was one of the fixed shapes with a parsed address
    for c in setup.rec.calls() {
        for a in &c.args {
            assert!(
                a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-:./".contains(&b)),
                "suspicious argument {a:?} in {c:?}"
            );
        }
    }
    assert!(!std::path::Path::new("/tmp/ampere-pwned").exists());
    let stored = setup.stored();
    assert_eq!(stored.len(), 4);
    let log = setup.log();
    assert!(log.contains("is not an address"), "{log}");
    assert!(!log.contains('\u{1b}'), "terminal escape reached the log");
}

#[test]
fn signals_usr1_stats_hup_reload_and_term() {
    let server = AmiServer::start(vec![Plan::Custom(crf("IPV4/TCP/192.0.2.50/5060", "1"))]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in"));
    wait_for(10, "event", || {
        d.signal("USR1");
        std::thread::sleep(Duration::from_millis(100));
        setup.log().contains("ChallengeResponseFailed=1")
    });
    // A broken config on reload keeps the running one.
    let good = std::fs::read_to_string(&setup.cfg).unwrap();
    std::fs::write(&setup.cfg, format!("{good}trust = nonsense\n")).unwrap();
    d.signal("HUP");
    wait_for(10, "reload error", || {
        setup
            .log()
            .contains("reload failed, keeping the running config")
    });
    assert!(setup.log().contains("ampere.cfg:"), "{}", setup.log());
    // A good one is applied; changing the chain needs a restart.
    std::fs::write(&setup.cfg, format!("{good}loyalty = 9\nchain = other\n")).unwrap();
    d.signal("HUP");
    wait_for(10, "reload", || setup.log().contains("config reloaded"));
    assert!(setup
        .log()
        .contains("changed chain take effect after a restart"));
    assert_eq!(
        server.accepted(),
        1,
        "a reload without AMI changes must not reconnect"
    );
    assert_eq!(d.stop(), 0);
    assert!(setup.log().contains("stopping (bans stay in the chain)"));
    // No unban or flush on stop.
    assert!(setup
        .rec
        .calls()
        .iter()
        .all(|c| !c.args.contains(&"-D".to_string())));
}

#[test]
fn response_error_inside_an_event_is_never_taken_for_the_login_answer() {
    // While the login is pending, an event that carries `Response: Error` (as
    // ChallengeResponseFailed does, filled by the attacker) and an answer to somebody
    // else's action arrive first; then the real answer, matched by our ActionID.
    let mut raw = Vec::new();
    raw.extend(crf("IPV4/TCP/198.51.100.30/5060", "1001"));
    raw.extend_from_slice(
        b"Response: Error\r\nActionID: not-ours\r\nMessage: Authentication failed\r\n\r\n",
    );
    raw.extend_from_slice(
        b"Response: Success\r\nActionID: {ACTIONID}\r\nMessage: Authentication accepted\r\n\r\n",
    );
    for _ in 0..15 {
        raw.extend(crf("IPV4/TCP/198.51.100.31/5060", "1001"));
    }
    let server = AmiServer::start(vec![Plan::Raw(raw)]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the ban", || !setup.rec.bans().is_empty());
    assert_eq!(d.stop(), 0);
    let log = setup.log();
    assert!(!log.contains("refused"), "{log}");
    assert_eq!(server.accepted(), 1, "{log}");
    assert_eq!(ban_addrs(&setup), ["198.51.100.31"]);
}

#[test]
fn shell_metacharacters_in_every_field_reach_no_command_line() {
    let evil =
        "$(touch /tmp/ampere-pwned2); `touch /tmp/ampere-pwned2` | & > /tmp/ampere-pwned2 \\ ' \"";
    let mut s = Vec::new();
    for _ in 0..15 {
        s.extend(event(&[
            ("Event", "ChallengeResponseFailed"),
            ("Privilege", evil),
            ("EventTV", evil),
            ("Severity", evil),
            ("Service", "PJSIP"),
            ("EventVersion", evil),
            ("AccountID", evil),
            ("SessionID", evil),
            ("LocalAddress", evil),
            ("RemoteAddress", "IPV4/TCP/198.51.100.40/5060"),
            ("Challenge", evil),
            ("Response", evil),
            ("ExpectedResponse", evil),
            (evil, evil),
        ]));
    }
    let server = AmiServer::start(vec![Plan::Custom(s)]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the ban", || !setup.rec.bans().is_empty());
    assert_eq!(d.stop(), 0);
    assert_eq!(ban_addrs(&setup), ["198.51.100.40"]);
    let ban = setup
        .rec
        .calls()
        .into_iter()
        .find(|c| c.args.contains(&"-I".to_string()))
        .unwrap();
    assert_eq!(
        ban.args,
        ["-w", "-I", "ampere", "-s", "198.51.100.40/32", "-j", "DROP"]
    );
    assert!(!std::path::Path::new("/tmp/ampere-pwned2").exists());
    // The account text is stored verbatim (bound parameter) and listed escaped.
    let (_, list, _) = setup.run(&["-l"], "");
    assert!(
        list.contains("ChallengeResponseFailed ($(touch /tmp/ampere-pwned2)"),
        "{list}"
    );
}

#[test]
fn hooks_run_without_blocking_and_a_hanging_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.out");
    let onban = dir.path().join("onban");
    let onunban = dir.path().join("onunban");
    // onban hangs for the first address: the loop must go on banning meanwhile.
    let lock = exec_lock();
    std::fs::write(
        &onban,
        format!(
            "#!/bin/sh\nprintf 'ban [%s] [%s] [%s]\\n' \"$1\" \"$2\" \"$3\" >> {o}\n[ \"$1\" = 198.51.100.60 ] && sleep 30\nexit 0\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &onunban,
        format!(
            "#!/bin/sh\nprintf 'unban [%s] [%s]\\n' \"$1\" \"$2\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    for f in [&onban, &onunban] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    drop(lock);
    let mut s = Vec::new();
    for _ in 0..15 {
        s.extend(crf("IPV4/TCP/198.51.100.60/5060", "$(id) `x`"));
    }
    for _ in 0..15 {
        s.extend(crf("IPV4/TCP/198.51.100.61/5060", "1001"));
    }
    let server = AmiServer::start(vec![Plan::Custom(s)]);
    let setup = Setup::new(
        Some(server.addr),
        &format!(
            "onban = {}\nonunban = {}\nhook_timeout = 1\nbantime = 2\n",
            onban.display(),
            onunban.display()
        ),
    );
    let d = setup.spawn();
    wait_for(10, "both bans", || setup.rec.bans().len() == 2);
    wait_for(10, "the hanging hook killed", || {
        setup.log().contains("killed")
    });
    wait_for(10, "both unbans", || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .matches("unban")
            .count()
            == 2
    });
    assert_eq!(d.stop(), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("ban [198.51.100.60] [ChallengeResponseFailed] [$(id) `x`]\n"),
        "{text}"
    );
    assert!(
        text.contains("ban [198.51.100.61] [ChallengeResponseFailed] [1001]\n"),
        "{text}"
    );
    assert!(text.contains("unban [198.51.100.60] [expired]\n"), "{text}");
    // expiry removed both rules: bans made together end together, in one batch (`-D`
    // lines of one iptables-restore) or one by one (`iptables -D`)
    let mut dels: Vec<String> = Vec::new();
    for c in setup.rec.calls() {
        if c.args.get(1).map(String::as_str) == Some("-D") {
            dels.push(c.args[4].clone());
        }
        for l in c.stdin.lines().filter(|l| l.starts_with("-D ")) {
            let mut w = l.split_whitespace().skip_while(|w| *w != "-s");
            dels.extend(w.nth(1).map(String::from));
        }
    }
    dels.sort();
    assert_eq!(dels, ["198.51.100.60/32", "198.51.100.61/32"]);
    assert!(setup.stored().is_empty());
}

#[test]
fn stats_file_is_written_atomically() {
    let mut s = Vec::new();
    for _ in 0..15 {
        s.extend(crf("IPV4/TCP/198.51.100.70/5060", "1001"));
    }
    let server = AmiServer::start(vec![Plan::Custom(s)]);
    let setup = Setup::new(Some(server.addr), "");
    let prom = setup.dir.path().join("ampere.prom");
    let cfg = std::fs::read_to_string(&setup.cfg).unwrap();
    std::fs::write(
        &setup.cfg,
        format!("{cfg}statsfile = {}\nstats_interval = 1\n", prom.display()),
    )
    .unwrap();
    let d = setup.spawn();
    wait_for(10, "a stats file with the ban", || {
        std::fs::read_to_string(&prom)
            .unwrap_or_default()
            .contains("ampere_bans_total 1\n")
    });
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains(
            "ampere_events_total{event=\"ChallengeResponseFailed\",service=\"PJSIP\"} 15\n"
        ),
        "{text}"
    );
    assert!(text.contains("ampere_active_bans 1\n"), "{text}");
    assert!(text.contains("ampere_ami_connected 1\n"), "{text}");
    assert!(
        !text.contains("ampere_last_event_timestamp_seconds 0\n"),
        "{text}"
    );
    assert!(!setup.dir.path().join("ampere.prom.tmp").exists());
    d.signal("USR1");
    wait_for(5, "stats line", || {
        setup.log().contains("bans 1 unbans 0 active 1")
    });
    assert_eq!(d.stop(), 0);
}

/// Three InvalidAccountID events (a ban with loyalty 3) from each of 198.51.100.`first..first+n`.
fn burst(first: u32, n: u32) -> Vec<u8> {
    let mut s = Vec::new();
    for a in first..first + n {
        for k in 0..3 {
            let remote = format!("IPV4/TCP/198.51.100.{a}/5060");
            s.extend(invalid_account_event(k, &remote).into_bytes());
        }
    }
    s
}

#[test]
fn a_burst_of_bans_costs_one_firewall_command_and_a_failed_batch_is_retried_per_ban() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in"));
    let before = setup.rec.calls().len();
    tx.send(burst(1, 20)).unwrap();
    wait_for(10, "20 bans", || setup.rec.bans().len() == 20);
    let calls = setup.rec.calls().split_off(before);
    // One write of 60 events is normally one read; a read split by the kernel may add one.
    assert!(
        calls.len() <= 2 && calls.iter().all(|c| c.cmd == "iptables-restore"),
        "20 bans took {} commands: {calls:?}",
        calls.len()
    );
    assert!(
        calls[0].args.contains(&"--noflush".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls[0].stdin.contains("-F "),
        "a ban batch flushed the chain"
    );

    // The batch fails: every ban is tried on its own, and each gets its rule.
    setup.rec.fail("iptables-restore", true);
    tx.send(burst(101, 20)).unwrap();
    let want: BTreeSet<String> = (101..121).map(|a| format!("198.51.100.{a}/32")).collect();
    let single = || -> BTreeSet<String> {
        setup
            .rec
            .calls()
            .into_iter()
            .filter(|c| c.cmd == "iptables" && c.args.get(1).is_some_and(|a| a == "-I"))
            .map(|c| c.args[4].clone())
            .collect()
    };
    wait_for(10, "20 single bans after the failed batch", || {
        single() == want
    });
    assert!(
        setup.log().contains("applying them one by one"),
        "{}",
        setup.log()
    );
    assert_eq!(setup.stored().len(), 40);
    assert_eq!(d.stop(), 0);
}

#[test]
fn bans_reach_the_database_file_itself_once_the_stream_is_quiet() {
    // The daemon checkpoints the WAL from its timer (not inside a ban's commit): a second
    // after the last ban, the database file alone, without its -wal, holds the ban.
    let server = AmiServer::start(vec![Plan::Custom(burst(1, 1))]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the ban", || setup.stored().len() == 1);
    std::thread::sleep(Duration::from_millis(1500));
    let copy = setup.dir.path().join("copy.db");
    std::fs::copy(&setup.db, &copy).unwrap();
    let alone = ampere::store::Store::open(&copy).unwrap();
    let bans: Vec<String> = alone
        .active()
        .unwrap()
        .iter()
        .map(|b| ampere::addr::net_text(&b.net))
        .collect();
    assert_eq!(bans, ["198.51.100.1"]);
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_reload_names_every_restart_only_key_and_the_daemon_keeps_its_firewall() {
    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in"));
    // Every restart-only key changed at once, to the table's example values: the backend
    // (nft) and the tool paths among them, which would break bans if taken over live.
    let restart: Vec<&ampere::config::Key> = ampere::config::all_keys()
        .filter(|k| k.effect == ampere::config::Effect::Restart)
        .collect();
    let good = std::fs::read_to_string(&setup.cfg).unwrap();
    let changed: String = restart
        .iter()
        .map(|k| format!("{} = {}\n", k.name, k.example))
        .collect();
    std::fs::write(&setup.cfg, format!("{good}{changed}")).unwrap();
    d.signal("HUP");
    wait_for(10, "reload", || setup.log().contains("config reloaded"));
    let log = setup.log();
    let line = log
        .lines()
        .find(|l| l.contains("take effect after a restart"))
        .unwrap_or_else(|| panic!("no restart warning: {log}"));
    for k in &restart {
        assert!(line.contains(k.name), "`{}` not named: {line}", k.name);
    }
    // The running backend (the recorder's iptables) still bans, in the same chain.
    tx.send(crf("IPV4/TCP/192.0.2.77/5060", "1").repeat(15))
        .unwrap();
    wait_for(10, "ban", || !setup.rec.bans().is_empty());
    assert_eq!(
        setup.rec.bans(),
        [("iptables".to_string(), "192.0.2.77/32".to_string())]
    );
    assert!(
        setup
            .rec
            .calls()
            .iter()
            .any(|c| c.args.get(1).is_some_and(|a| a == "-I") && c.args[2] == "ampere"),
        "still the running chain"
    );
    assert_eq!(setup.stored(), ["192.0.2.77"], "still the running database");
    assert_eq!(server.accepted(), 1, "no AMI key changed: no reconnect");
    assert_eq!(d.stop(), 0);
}

#[test]
fn a_login_that_cannot_read_security_events_is_reported_loudly() {
    // pjsip-wrong-password as a `read = system` user receives it: every security event
    // (this login's own SuccessfulAuth included) left out. Beside it, the whole capture.
    let is_security = |m: &Vec<u8>| {
        let text = String::from_utf8_lossy(m);
        ["SuccessfulAuth", "ChallengeSent", "ChallengeResponseFailed"]
            .iter()
            .any(|e| text.contains(&format!("Event: {e}\r\n")))
    };
    let all = fixture_events("pjsip-wrong-password.ami", &[]);
    assert!(
        all.iter().any(is_security),
        "the capture has security events"
    );
    let system_only: Vec<u8> = all
        .iter()
        .filter(|m| !is_security(m))
        .flatten()
        .copied()
        .collect();
    let blind = AmiServer::start(vec![Plan::Custom(system_only)]);
    let seeing = AmiServer::start(vec![Plan::Custom(all.concat())]);
    let (b, s) = (
        Setup::new(
            Some(blind.addr),
            "statsfile = stats.prom\nstats_interval = 1\n",
        ),
        Setup::new(Some(seeing.addr), ""),
    );
    std::fs::write(
        &b.cfg,
        std::fs::read_to_string(&b.cfg).unwrap().replace(
            "statsfile = stats.prom",
            &format!("statsfile = {}", b.dir.path().join("stats.prom").display()),
        ),
    )
    .unwrap();
    let (db, ds) = (b.spawn(), s.spawn());
    wait_for(20, "the blind warning", || {
        b.log().contains("read = security,system")
    });
    let log = b.log();
    assert!(log.contains("no security event has arrived"), "{log}");
    assert!(log.contains("error:"), "said as an error: {log}");
    wait_for(20, "the counter", || {
        std::fs::read_to_string(b.dir.path().join("stats.prom"))
            .unwrap_or_default()
            .contains("ampere_ami_blind_warnings_total 1")
    });
    // The same capture with its security events: banned, and no warning after the grace time.
    wait_for(20, "the ban", || !s.rec.bans().is_empty());
    std::thread::sleep(Duration::from_secs(6));
    assert!(!s.log().contains("no security event"), "{}", s.log());
    assert_eq!((db.stop(), ds.stop()), (0, 0));
}

#[test]
fn a_repeated_header_drops_the_event_and_a_zoned_link_local_address_is_banned() {
    // svmap's events with a second RemoteAddress pointing elsewhere: dropped, never scored
    // for either address; and the ipv6 capture's attacker as a link-local address with zone.
    let twice: Vec<u8> = fixture_events("pjsip-svmap.ami", &[])
        .into_iter()
        .map(|m| {
            String::from_utf8(m)
                .unwrap()
                .replace(
                    "RemoteAddress: IPV4/UDP/203.0.113.2/5060\r\n",
                    "RemoteAddress: IPV4/UDP/203.0.113.2/5060\r\nRemoteAddress: IPV4/UDP/198.51.100.44/5060\r\n",
                )
                .into_bytes()
        })
        .collect::<Vec<_>>()
        .concat()
        .repeat(3);
    let zoned = fixture_events(
        "ipv6.ami",
        &[("IPV6/UDP/2001:db8:99::2", "IPV6/UDP/fe80::66%eth0")],
    )
    .concat();
    let server = AmiServer::start(vec![Plan::Custom([twice, zoned].concat())]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the link-local ban", || !setup.rec.bans().is_empty());
    d.signal("USR1");
    wait_for(10, "the counters", || {
        setup.log().contains("duplicate headers")
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(ban_addrs_any(&setup), ["fe80::66/128"]);
    let log = setup.log();
    // svmap: 4 events from the scanner, three times.
    assert!(log.contains("duplicate headers 12"), "{log}");
    assert!(log.contains("given twice was dropped"), "{log}");
}

/// Every network the recorder saw banned, as written.
fn ban_addrs_any(setup: &Setup) -> Vec<String> {
    let mut v: Vec<String> = setup.rec.bans().into_iter().map(|(_, n)| n).collect();
    v.sort();
    v
}
