use super::*;

#[test]
fn find_byte_agrees_with_a_byte_loop() {
    // Bytes next to '\n' in value, and with the high bit set, trip naive SWAR tricks.
    let alphabet = [
        b'\n',
        b'\x0b',
        b'\x09',
        b'\x8a',
        b'\x0a' ^ 0x80,
        b'a',
        0,
        0xff,
    ];
    let mut seed = 7u32;
    for len in 0..48 {
        for _ in 0..200 {
            let hay: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let r = (seed >> 16) as usize;
                    // mostly not a newline, so that late and absent ones are covered
                    if r % 5 == 0 {
                        alphabet[r / 5 % alphabet.len()]
                    } else {
                        alphabet[1 + r % (alphabet.len() - 1)]
                    }
                })
                .collect();
            let want = hay.iter().position(|&b| b == b'\n');
            assert_eq!(find_byte(&hay, b'\n'), want, "{hay:?}");
            let want = hay.iter().position(|&b| b == 0x8a);
            assert_eq!(find_byte(&hay, 0x8a), want, "{hay:?}");
        }
    }
}

#[test]
fn the_everyday_split_agrees_with_trimming() {
    let alphabet = b"ab: \t\x0b\x0c\0\x01:Z";
    let mut seed = 11u32;
    for _ in 0..100_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (seed >> 16) as usize % 12;
        let line: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                alphabet[(seed >> 16) as usize % alphabet.len()]
            })
            .collect();
        let want = line.iter().position(|&b| b == b':').map(|c| {
            let name = line[..c].trim_ascii();
            let value = line[c + 1..].trim_ascii();
            (name.to_vec(), value.to_vec())
        });
        let got =
            split_header(&line).map(|[n, ne, v, ve]| (line[n..ne].to_vec(), line[v..ve].to_vec()));
        assert_eq!(got, want, "{line:?}");
    }
}

type Headers = Vec<(String, String)>;

/// Frames `data` fed in chunks of `chunk` bytes; returns banner and messages as text.
fn frame(data: &[u8], chunk: usize) -> (Vec<String>, Vec<Headers>, FramerStats) {
    let mut fr = Framer::new();
    let mut banners = Vec::new();
    let mut msgs = Vec::new();
    for part in data.chunks(chunk.max(1)) {
        fr.push(part, &mut |item| match item {
            Item::Banner(b) => banners.push(String::from_utf8_lossy(b).into_owned()),
            Item::Message(m) => msgs.push(
                m.headers()
                    .map(|(n, v)| {
                        (
                            String::from_utf8_lossy(n).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        )
                    })
                    .collect(),
            ),
        });
    }
    (banners, msgs, fr.stats)
}

#[test]
fn banner_then_messages_crlf_and_lf_any_chunking() {
    let data = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\nStatus: Fully Booted\n\n";
    for chunk in [1, 2, 3, 7, 64, 1000] {
        let (b, m, _) = frame(data, chunk);
        assert_eq!(b, vec!["Asterisk Call Manager/11.0.0"]);
        assert_eq!(m.len(), 2, "chunk {chunk}");
        assert_eq!(
            m[0][1],
            ("Message".into(), "Authentication accepted".into())
        );
        assert_eq!(m[1][0], ("Event".into(), "FullyBooted".into()));
    }
}

#[test]
fn values_with_colons_and_lookup_case() {
    let data = b"banner\r\nEvent: RequestNotAllowed\r\nRequestType: Action: Ping\r\nLocalAddress: IPV6/UDP/::1/5060\r\nEmpty:\r\n\r\n";
    let mut fr = Framer::new();
    let mut hits = 0;
    fr.push(data, &mut |item| {
        if let Item::Message(m) = item {
            hits += 1;
            assert_eq!(m.get("requesttype"), Some(&b"Action: Ping"[..]));
            assert_eq!(m.get("LocalAddress"), Some(&b"IPV6/UDP/::1/5060"[..]));
            assert_eq!(m.get("Empty"), Some(&b""[..]));
            assert_eq!(m.get("Missing"), None);
            assert!(!m.is_response());
        }
    });
    assert_eq!(hits, 1);
}

#[test]
fn response_header_inside_an_event_is_not_a_response() {
    let ev = Message::from_pairs(&[
        ("Event", b"ChallengeResponseFailed"),
        ("Response", b"Error"),
    ]);
    assert!(!ev.is_response());
    let resp = Message::from_pairs(&[("Response", b"Error"), ("Message", b"x")]);
    assert!(resp.is_response());
}

#[test]
fn long_line_dropped_without_losing_sync() {
    let mut data = b"banner\r\nEvent: A\r\nJunk: ".to_vec();
    data.extend(std::iter::repeat_n(b'x', 100_000));
    data.extend_from_slice(b"\r\nAccountID: 1\r\n\r\nEvent: B\r\n\r\n");
    let (_, m, st) = frame(&data, 4096);
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0],
        vec![
            ("Event".into(), "A".into()),
            ("AccountID".into(), "1".into())
        ]
    );
    assert_eq!(m[1], vec![("Event".into(), "B".into())]);
    assert_eq!(st.dropped_lines, 1);
}

#[test]
fn too_many_headers_drop_the_message_only() {
    let mut data = b"banner\r\nEvent: Flood\r\n".to_vec();
    for i in 0..10_000 {
        data.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    data.extend_from_slice(b"\r\nEvent: After\r\n\r\n");
    let (_, m, st) = frame(&data, 65536);
    assert_eq!(m, vec![vec![("Event".to_string(), "After".to_string())]]);
    assert_eq!(st.dropped_messages, 1);
}

#[test]
fn nul_and_invalid_utf8_are_just_bytes() {
    let data = b"banner\r\nEvent: X\0Y\r\nAccountID: \xff\xfe\x00\r\n\r\n";
    let mut fr = Framer::new();
    let mut got = None;
    fr.push(data, &mut |item| {
        if let Item::Message(m) = item {
            got = Some(m.get("AccountID").unwrap().to_vec());
        }
    });
    assert_eq!(got.unwrap(), b"\xff\xfe\x00");
}

#[test]
fn truncated_message_is_not_delivered() {
    let (_, m, _) = frame(b"banner\r\nEvent: Half\r\nAccountID: 1", 5);
    assert!(m.is_empty());
}

#[test]
fn actions_cannot_be_split_by_config_values() {
    let a = login_action("amp\r\nAction: Originate", "s\ne", "id1");
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.matches("\r\n").count(), 6);
    assert!(text.contains("Username: ampAction: Originate\r\n"));
    assert!(text.contains("Events: security,system\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
}
