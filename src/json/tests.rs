use super::*;

/// The tokens of `text` fed in pieces of `step` bytes, as one line each.
fn tokens(text: &[u8], step: usize) -> Result<Vec<String>, Error> {
    let mut r = Reader::new(64);
    let mut out = Vec::new();
    let mut sink = |t: Token<'_>| {
        out.push(format!("{t:?}"));
        Ok(())
    };
    for piece in text.chunks(step) {
        r.feed(piece, &mut sink)?;
    }
    r.finish(&mut sink)?;
    Ok(out)
}

#[test]
fn a_decision_stream_reads_the_same_whatever_the_pieces() {
    let text = br#"{"deleted":null,"new":[{"duration":"3h59m59.04s","id":1,"scope":"Ip","value":"203.0.113.5","x":[true,false,-1.5e3]}]}"#;
    let whole = tokens(text, text.len()).unwrap();
    for step in 1..8 {
        assert_eq!(tokens(text, step).unwrap(), whole, "step {step}");
    }
    assert_eq!(
        whole,
        [
            "BeginObject",
            "Key(\"deleted\")",
            "Null",
            "Key(\"new\")",
            "BeginArray",
            "BeginObject",
            "Key(\"duration\")",
            "Str(\"3h59m59.04s\")",
            "Key(\"id\")",
            "Number(\"1\")",
            "Key(\"scope\")",
            "Str(\"Ip\")",
            "Key(\"value\")",
            "Str(\"203.0.113.5\")",
            "Key(\"x\")",
            "BeginArray",
            "Bool(true)",
            "Bool(false)",
            "Number(\"-1.5e3\")",
            "EndArray",
            "EndObject",
            "EndArray",
            "EndObject"
        ]
    );
}

#[test]
fn escapes_and_surrogates_are_decoded() {
    let t = tokens(br#"["a\"b\\c\/\n\u00e9\ud83d\ude00\ud800x"]"#, 1).unwrap();
    assert_eq!(
        t[1],
        format!("Str({:?})", "a\"b\\c/\n\u{e9}\u{1f600}\u{fffd}x")
    );
}

#[test]
fn malformed_text_is_an_error_at_its_byte() {
    for (text, offset) in [
        (&br#"{"a" 1}"#[..], 5),
        (b"{\"a\":01}", 7),
        (b"[1,]", 3),
        (b"{,}", 1),
        (b"[tru]", 4),
        (b"[\"a\x01\"]", 3),
        (b"[\"\xff\"]", 3),
        (b"{} {}", 3),
        (b"[\"\\x\"]", 3),
        (b"[1.]", 3),
        (b"[1e+]", 4),
        (b"[-]", 2),
        (b"{\"a\":1]", 6),
        (b"[1}", 2),
    ] {
        let e = tokens(text, 1).unwrap_err();
        assert_eq!(e.offset, offset, "{:?}: {e}", String::from_utf8_lossy(text));
    }
    for text in [&b"{\"a\":"[..], b"[1", b"\"abc", b"", b"  "] {
        let e = tokens(text, 1).unwrap_err();
        assert!(e.what.contains("ends inside"), "{e}");
    }
}

#[test]
fn a_bare_number_completes_at_the_end() {
    assert_eq!(tokens(b"12", 1).unwrap(), ["Number(\"12\")"]);
}

#[test]
fn depth_and_string_length_are_bounded() {
    let deep = "[".repeat(MAX_DEPTH + 1);
    let e = tokens(deep.as_bytes(), 3).unwrap_err();
    assert!(e.what.contains("deeper"), "{e}");
    assert_eq!(e.offset, MAX_DEPTH as u64);
    let long = format!("[\"{}\"]", "a".repeat(65));
    let e = tokens(long.as_bytes(), 7).unwrap_err();
    assert!(e.what.contains("longer than 64"), "{e}");
    let num = format!("[{}]", "1".repeat(65));
    assert!(tokens(num.as_bytes(), 7).is_err());
}

#[test]
fn an_error_of_the_sink_stops_the_reading() {
    let mut r = Reader::new(64);
    let mut n = 0;
    let e = r
        .feed(b"[1,2,3]", &mut |_| {
            n += 1;
            if n == 3 {
                Err("enough".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(e.what, "enough");
    assert_eq!(n, 3);
}

#[test]
fn quoted_text_reads_back_as_itself() {
    let nasty = "a\"b\\c\nd\u{1}\u{7f}\u{2028}é😀";
    let q = quoted(nasty);
    let mut r = Reader::new(256);
    let mut got = String::new();
    r.feed(q.as_bytes(), &mut |t| {
        if let Token::Str(s) = t {
            got = s.to_string();
        }
        Ok(())
    })
    .unwrap();
    r.finish(&mut |_| Ok(())).unwrap();
    assert_eq!(got, nasty);
    assert!(q.bytes().all(|b| b >= 0x20), "{q}");
}
