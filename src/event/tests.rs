use super::*;

fn ra(v: &str) -> Option<String> {
    Matcher::new()
        .remote_address(v.as_bytes())
        .map(|a| canonical(a).to_string())
}

#[test]
fn remote_address_variants() {
    assert_eq!(
        ra("IPV4/UDP/203.0.113.2/5060").as_deref(),
        Some("203.0.113.2")
    );
    assert_eq!(ra("IPV4/TCP/127.0.0.1/34642").as_deref(), Some("127.0.0.1"));
    assert_eq!(ra("IPV4/203.0.113.2/5060").as_deref(), Some("203.0.113.2"));
    assert_eq!(
        ra("IPV6/UDP/2001:db8:99::2/5060").as_deref(),
        Some("2001:db8:99::2")
    );
    assert_eq!(ra("IPV6/fd99:1::2/45174").as_deref(), Some("fd99:1::2"));
    assert_eq!(ra("IPV6/TLS/::1/5061").as_deref(), Some("::1"));
    assert_eq!(
        ra("IPV6/WSS/[2001:db8::7]/8089").as_deref(),
        Some("2001:db8::7")
    );
    assert_eq!(
        ra("IPV6/UDP/::ffff:198.51.100.4/5060").as_deref(),
        Some("198.51.100.4")
    );
    assert_eq!(ra("ipv4/ws/192.0.2.9/80").as_deref(), Some("192.0.2.9"));
    // A link-local address with its zone: scored on the address (was ignored: fail-open).
    assert_eq!(ra("IPV6/UDP/fe80::1%eth0/5060").as_deref(), Some("fe80::1"));
    assert_eq!(
        ra("IPV6/UDP/[fe80::2%br-lan]/5060").as_deref(),
        Some("fe80::2")
    );
}

/// The events of one message, read by the matcher.
fn evidence_of(headers: &str) -> Evidence {
    let text = format!("{headers}\r\n\r\n");
    let mut f = crate::ami::Framer::new();
    let mut got = None;
    let mut mt = Matcher::new();
    f.push(b"Asterisk Call Manager/9.0.0\r\n", &mut |_| {});
    f.push(text.as_bytes(), &mut |item| {
        if let crate::ami::Item::Message(m) = item {
            if let Parsed::Security(ev) = mt.parse(&m) {
                got = Some(ev.evidence);
            }
        }
    });
    got.expect("a security event")
}

#[test]
fn what_proves_the_source() {
    let ev = |kind: &str, service: &str, remote: &str, extra: &str| {
        evidence_of(&format!(
            "Event: {kind}\r\nService: {service}\r\nAccountID: 1001\r\nRemoteAddress: {remote}{extra}"
        ))
    };
    use Evidence::*;
    // PJSIP over UDP: nothing proves the source (pjsip-forged-source, pjsip-forged-auth).
    for kind in [
        "ChallengeSent",
        "ChallengeResponseFailed",
        "InvalidAccountID",
        "FailedACL",
    ] {
        assert_eq!(
            ev(kind, "PJSIP", "IPV4/UDP/198.51.100.60/5060", ""),
            Weak,
            "{kind}"
        );
        assert_eq!(
            ev(kind, "PJSIP", "IPV6/UDP/2001:db8::1/5060", ""),
            Weak,
            "{kind}"
        );
        assert_eq!(
            ev(kind, "PJSIP", "IPV4/198.51.100.60/5060", ""),
            Weak,
            "{kind}"
        );
        for t in ["TCP", "TLS", "WS", "WSS", "tcp"] {
            let r = format!("IPV4/{t}/198.51.100.60/5060");
            assert_eq!(ev(kind, "PJSIP", &r, ""), Strong, "{kind} {t}");
        }
    }
    assert_eq!(
        ev("InvalidPassword", "AMI", "IPV4/TCP/203.0.113.2/5038", ""),
        Strong
    );
    assert_eq!(
        ev("SuccessfulAuth", "PJSIP", "IPV4/UDP/10.99.1.2/5060", ""),
        Strong
    );
    // chan_sip: the nonce it issued came back.
    let sip = |extra: &str| ev("InvalidPassword", "SIP", "IPV4/UDP/203.0.113.2/5060", extra);
    assert_eq!(
        sip("\r\nChallenge: 4d2a\r\nReceivedChallenge: 4d2a"),
        Strong
    );
    assert_eq!(sip("\r\nChallenge: 4d2a\r\nReceivedChallenge: 9999"), Weak);
    assert_eq!(sip("\r\nChallenge: \r\nReceivedChallenge: "), Weak);
    assert_eq!(sip("\r\nChallenge: 4d2a"), Weak);
    assert_eq!(
        sip("\r\nChallenge: 4d2a\r\nReceivedChallenge: 4d2a\r\nReceivedChallenge: 4d2a"),
        Weak
    );
    // Only chan_sip's InvalidPassword carries both.
    assert_eq!(
        ev(
            "ChallengeResponseFailed",
            "PJSIP",
            "IPV4/UDP/203.0.113.2/5060",
            "\r\nChallenge: 4d2a\r\nReceivedChallenge: 4d2a"
        ),
        Weak
    );
}

#[test]
fn the_registrar_s_refusals_are_named() {
    let registrar = |extra: &str| {
        let text = format!(
            "Event: FailedACL\r\nService: PJSIP\r\nAccountID: 1001\r\nRemoteAddress: IPV4/UDP/10.99.1.2/5060{extra}\r\n\r\n"
        );
        let mut f = crate::ami::Framer::new();
        let mut mt = Matcher::new();
        let mut got = None;
        f.push(b"Asterisk Call Manager/9.0.0\r\n", &mut |_| {});
        f.push(text.as_bytes(), &mut |item| {
            if let crate::ami::Item::Message(m) = item {
                if let Parsed::Security(ev) = mt.parse(&m) {
                    got = Some(ev.registrar.map(RegistrarRefusal::name));
                }
            }
        });
        got.expect("a security event")
    };
    for r in REGISTRAR_REFUSALS {
        assert_eq!(registrar(&format!("\r\nACLName: {r}")), Some(r));
    }
    // An ACL's own refusal, none, a near miss, or two names: no registrar refusal.
    assert_eq!(registrar("\r\nACLName: device_must_match_acl"), None);
    assert_eq!(registrar(""), None);
    assert_eq!(registrar("\r\nACLName: registrar_attempt_exceeds"), None);
    let two = format!("\r\nACLName: {0}\r\nACLName: {0}", REGISTRAR_REFUSALS[0]);
    assert_eq!(registrar(&two), None);
}

#[test]
fn remote_address_garbage() {
    for bad in [
        "",
        "IPV4/UDP/203.0.113.2",
        "IPV4/UDP/203.0.113.2/5060/extra",
        "IPV4/SCTP/203.0.113.2/5060",
        "IPV6/UDP/203.0.113.2/5060",
        "IPV4/UDP/2001:db8::1/5060",
        "IPV4/UDP/1.2.3.4;touch /tmp/x/5060",
        "IPV4/UDP/$(id)/5060",
        "IPV4/UDP/`id`/5060",
        "IPV4/UDP/999.1.1.1/5060",
        "IPV4/UDP/203.0.113.2/5060\n",
        "IPV4/UDP/203.0.113.2/506000",
        "IPV6/UDP/fe80::1%/5060",
        "IPV6/UDP/fe80::1%eth0;id/5060",
        "IPV4/UDP/203.0.113.2%eth0/5060x",
        "garbage",
    ] {
        assert_eq!(ra(bad), None, "{bad:?}");
    }
}

#[test]
fn the_plain_reading_agrees_with_the_pattern() {
    let mut mt = Matcher::new();
    let mut plain = 0;
    for family in ["IPV4", "IPV6", "ipv4", "IPV5"] {
        for transport in ["UDP/", "TCP/", "TLS/", "WS/", "udp/", "", "UDPX/"] {
            for addr in [
                "203.0.113.2",
                "0.0.0.0",
                "1.2.3",
                "01.2.3.4",
                "1.2.3.4.",
                "256.1.1.1",
                "1..2.3",
                "9",
                "2001:db8::1",
                "::",
                "::ffff:1.2.3.4",
                "2001:DB8::A",
                "fe80::1%eth0",
                "[2001:db8::7]",
                "1.2.3.4:5",
                "g::1",
                "",
                "1234567890123456789012345678901234567890123456",
            ] {
                for port in ["5060", "0", "99999", "123456", "", "5060\n", "50a"] {
                    let v = format!("{family}/{transport}{addr}/{port}").replace("\\n", "\n");
                    let want = mt.remote_address_by_pattern(v.as_bytes());
                    match plain_remote(v.as_bytes()) {
                        Plain::Addr(ip) => {
                            plain += 1;
                            assert_eq!(Some(ip), want, "{v}")
                        }
                        Plain::Invalid => assert_eq!(None, want, "{v}"),
                        Plain::Unread => {}
                    }
                    assert_eq!(mt.remote_address(v.as_bytes()), want, "{v}");
                }
            }
        }
    }
    // The everyday forms are read by hand, not left to the pattern.
    assert!(plain >= 40, "{plain}");
}

#[test]
fn a_second_header_that_ampere_reads_drops_the_message() {
    let mut mt = Matcher::new();
    for dup in [
        "RemoteAddress",
        "Event",
        "Service",
        "AccountID",
        "remoteaddress",
    ] {
        let m = Message::from_pairs(&[
            ("Event", b"InvalidAccountID"),
            ("Service", b"PJSIP"),
            ("AccountID", b"9999"),
            ("RemoteAddress", b"IPV4/UDP/203.0.113.2/5060"),
            (dup, b"IPV4/UDP/127.0.0.1/5060"),
        ]);
        assert!(matches!(mt.parse(&m), Parsed::Duplicate), "{dup}");
    }
    // Headers Ampere does not read may repeat.
    let m = Message::from_pairs(&[
        ("Event", b"InvalidAccountID"),
        ("Challenge", b"a"),
        ("Challenge", b"b"),
        ("RemoteAddress", b"IPV4/UDP/203.0.113.2/5060"),
    ]);
    assert!(matches!(mt.parse(&m), Parsed::Security(_)));
}

#[test]
fn parse_event() {
    let mut mt = Matcher::new();
    let m = Message::from_pairs(&[
        ("Event", b"InvalidAccountID"),
        ("Service", b"PJSIP"),
        ("AccountID", b"9999"),
        ("RemoteAddress", b"IPV4/UDP/203.0.113.2/60615"),
    ]);
    match mt.parse(&m) {
        Parsed::Security(e) => {
            assert_eq!(e.kind, EventKind::InvalidAccountID);
            assert_eq!(e.service, b"PJSIP");
            assert_eq!(e.account, b"9999");
            assert_eq!(e.addr().to_string(), "203.0.113.2");
        }
        _ => panic!("not parsed"),
    }
    let other = Message::from_pairs(&[("Event", b"FullyBooted")]);
    assert!(matches!(mt.parse(&other), Parsed::Other));
    let mapped = Message::from_pairs(&[
        ("Event", b"FailedACL"),
        ("RemoteAddress", b"IPV6/UDP/::ffff:198.51.100.4/5060"),
    ]);
    match mt.parse(&mapped) {
        Parsed::Security(e) => assert_eq!(e.addr().to_string(), "198.51.100.4"),
        _ => panic!("not parsed"),
    }
    let bad = Message::from_pairs(&[("Event", b"FailedACL"), ("RemoteAddress", b"IPV4/UDP/x/1")]);
    assert!(matches!(
        mt.parse(&bad),
        Parsed::BadAddress {
            kind: EventKind::FailedACL,
            ..
        }
    ));
}
