use super::*;

fn parsed(line: &str) -> Option<(EventKind, String, String, Evidence)> {
    let mut m = LogMatcher::new();
    match m.parse(line.as_bytes()) {
        LogLine::Event(ev) => Some((
            ev.kind,
            String::from_utf8_lossy(ev.account).into_owned(),
            ev.addr().to_string(),
            ev.evidence,
        )),
        _ => None,
    }
}

const PREFIX: &str = "[2026-12-06 20:15:32] NOTICE[16979] chan_iax2.c: ";

#[test]
fn the_capture_s_lines_are_read() {
    use EventKind::*;
    // iax2-brute-authdebug.messages.log, verbatim.
    let lines = [
        ("[2026-12-06 20:15:32] NOTICE[16979] chan_iax2.c: Host 203.0.113.2 failed MD5 authentication for '2001' (04e71a7b2431beddb9464208688a0c97 != 3c9dc22d7360e16ebb9c62d72ae36a29)", Iax2AuthFailed, "2001"),
        ("[2026-12-06 20:15:32] WARNING[16980] chan_iax2.c: Host 203.0.113.2:41868 failed to authenticate as 2001", Iax2AuthFailed, "2001"),
        ("[2026-12-06 20:15:32] NOTICE[16973] chan_iax2.c: No registration for peer '9999' (from 203.0.113.2)", InvalidAccountID, "9999"),
        ("[2026-12-06 20:15:33] WARNING[16980] chan_iax2.c: Host 203.0.113.2:36373 failed to authenticate as guest", Iax2AuthFailed, "guest"),
    ];
    for (line, kind, account) in lines {
        assert_eq!(
            parsed(line),
            Some((
                kind,
                account.to_string(),
                "203.0.113.2".to_string(),
                Evidence::Weak
            )),
            "{line}"
        );
    }
    // Lines of the same log that are no guess: nothing.
    for line in [
        "[2026-12-06 20:15:32] WARNING[16980] chan_iax2.c: MD5 secret mismatch",
        "[2026-12-06 20:15:33] WARNING[16979] chan_iax2.c: Silently dropping frame without existent call number: 18829",
        "[2026-12-06 20:15:33] NOTICE[1] chan_sip.c: Registration from '<sip:1001@x>' failed for '203.0.113.2:5060' - Wrong password",
    ] {
        assert!(parsed(line).is_none(), "{line}");
    }
}

#[test]
fn the_address_is_asterisk_s_whatever_the_name_holds() {
    // A name that holds what looks like another address: the one Asterisk wrote last wins.
    let line = format!("{PREFIX}No registration for peer 'x' (from 10.99.1.2)' (from 203.0.113.2)");
    let (_, account, addr, _) = parsed(&line).unwrap();
    assert_eq!(addr, "203.0.113.2");
    assert_eq!(account, "x' (from 10.99.1.2)");
    let line =
        format!("{PREFIX}Host 203.0.113.2 failed MD5 authentication for 'a' (1 != 2)' (ab != cd)");
    assert_eq!(parsed(&line).unwrap().2, "203.0.113.2");
    // Other logger formats: a line number and function after the file name; IPv6.
    let line = "[2026-12-06 20:15:32] NOTICE[1][C-00000001] chan_iax2.c:12158 register_verify: Host 2001:db8::66 failed MD5 authentication for '2001' (aa != bb)";
    assert_eq!(parsed(line).unwrap().2, "2001:db8::66");
    let line = format!("{PREFIX}Host [2001:db8::66]:4569 failed to authenticate as 2001");
    assert_eq!(parsed(&line).unwrap().2, "2001:db8::66");
}

#[test]
fn an_address_that_does_not_parse_is_refused() {
    let mut m = LogMatcher::new();
    for addr in [
        "fe80::1%eth0",
        "203.0.113.999",
        "pbx.example.net",
        "1.2.3.4:99999",
        "[::1",
        "",
    ] {
        let line = format!("{PREFIX}No registration for peer 'x' (from {addr})");
        assert!(
            !matches!(m.parse(line.as_bytes()), LogLine::Event(_)),
            "{addr}"
        );
    }
    let line = format!("{PREFIX}No registration for peer 'x' (from fe80::1%eth0)");
    assert!(matches!(
        m.parse(line.as_bytes()),
        LogLine::BadAddress(b"fe80::1%eth0")
    ));
    // Too long, or binary: never matched.
    let long = format!(
        "{PREFIX}No registration for peer '{}' (from 203.0.113.2)",
        "a".repeat(MAX_LINE)
    );
    assert!(matches!(m.parse(long.as_bytes()), LogLine::Other));
    let mut binary = format!("{PREFIX}No registration for peer '").into_bytes();
    binary.extend_from_slice(&[0, 0xff, 0xfe]);
    binary.extend_from_slice(b"' (from 203.0.113.2)");
    assert!(
        matches!(m.parse(&binary), LogLine::Event(_)),
        "binary names are names"
    );
}

#[test]
fn a_log_is_told_from_an_ami_stream_and_its_times_read() {
    assert!(looks_like_a_log(b"[2026-12-06 20:15:32] NOTICE[1] x\n"));
    assert!(!looks_like_a_log(b"Asterisk Call Manager/9.0.0\r\n"));
    assert!(!looks_like_a_log(b"Event: FullyBooted\r\n"));
    assert_eq!(
        line_time(b"[2026-12-06 20:15:32] NOTICE"),
        Some(crate::clock::days_from_civil(2026, 12, 6) * 86_400 + 20 * 3600 + 15 * 60 + 32)
    );
    for bad in [
        "[2026-13-06 20:15:32]",
        "[2026-12-06T20:15:32]",
        "[2026-12-06 2x:15:32]",
        "[2026",
    ] {
        assert_eq!(line_time(bad.as_bytes()), None, "{bad}");
    }
}

#[test]
fn lines_are_bounded_and_whole_whatever_the_pieces() {
    let mut l = Lines::default();
    let mut got: Vec<String> = Vec::new();
    let mut push = |l: &mut Lines, d: &[u8]| {
        l.push(d, &mut |line| {
            got.push(String::from_utf8_lossy(line).into_owned())
        })
    };
    push(&mut l, b"one\ntw");
    push(&mut l, b"o\r\nthr");
    push(&mut l, b"ee");
    push(&mut l, b"\n");
    // A line of 16 MiB without a break, in pieces: dropped, counted once, nothing held.
    let big = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        push(&mut l, &big);
        assert!(l.partial.len() <= MAX_LINE);
    }
    push(&mut l, b"tail\nfour\n");
    let exact = "y".repeat(MAX_LINE);
    push(&mut l, format!("{exact}\n{exact}z\nfive\n").as_bytes());
    assert_eq!(got, ["one", "two", "three", "four", exact.as_str(), "five"]);
    assert_eq!(l.too_long, 2);
}
