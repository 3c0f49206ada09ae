use super::*;

fn read(text: &str, step: usize) -> Result<Vec<Item>, Error> {
    let mut r = StreamReader::new();
    let mut items = Vec::new();
    for piece in text.as_bytes().chunks(step) {
        r.feed(piece, &mut |i| items.push(i))?;
    }
    r.finish()?;
    Ok(items)
}

fn nets(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Item::Decision(d) => format!("{} {} {}", d.list.as_str(), d.net, d.seconds),
            Item::Skipped { list, value, why } => {
                format!("skip {} `{value}`: {why}", list.as_str())
            }
        })
        .collect()
}

#[test]
fn lapi_answers_read_as_decisions() {
    let text = r#"{"deleted":[{"duration":"-2m3.5s","id":7,"origin":"crowdsec","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","value":"198.51.100.7"}],"new":[{"duration":"3h59m59.040187841s","id":1,"origin":"ampere","scenario":"ampere/InvalidPassword","scope":"Ip","type":"ban","value":"203.0.113.5"},{"duration":"4h","id":2,"origin":"cscli","scenario":"manual","scope":"Range","type":"ban","value":"192.0.2.77/24"},{"duration":"1h","id":3,"origin":"cscli","scenario":"x","scope":"ip","type":"ban","value":"::ffff:192.0.2.1"}]}"#;
    for step in [1, 3, 64, text.len()] {
        let items = read(text, step).unwrap();
        assert_eq!(
            nets(&items),
            [
                "deleted 198.51.100.7/32 -123",
                "new 203.0.113.5/32 14400",
                "new 192.0.2.0/24 14400",
                "new 192.0.2.1/32 3600"
            ],
            "step {step}"
        );
        let Item::Decision(d) = &items[1] else {
            panic!()
        };
        assert_eq!(
            (d.origin.as_str(), d.scenario.as_str()),
            ("ampere", "ampere/InvalidPassword")
        );
    }
    assert!(read(r#"{"deleted":null,"new":null}"#, 1)
        .unwrap()
        .is_empty());
    assert!(
        read(r#"{"new":[], "other": {"a":[1,{"b":2}]}, "deleted":[]}"#, 2)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_entries_are_skipped_with_their_reason() {
    let text = r#"{"new":[
        {"duration":"4h","scope":"Ip","type":"captcha","value":"203.0.113.1"},
        {"duration":"4h","scope":"Country","type":"ban","value":"FR"},
        {"duration":"4h","scope":"Ip","type":"ban","value":"203.0.113.300"},
        {"duration":"4h","scope":"Range","type":"ban","value":"203.0.113.0/33"},
        {"duration":4,"scope":"Ip","type":"ban","value":"203.0.113.2"},
        {"duration":"4h","scope":"Ip","type":"ban","value":["203.0.113.3"]},
        {"duration":"1d","scope":"Ip","type":"ban","value":"203.0.113.4"},
        {"duration":"-1s","scope":"Ip","type":"ban","value":"203.0.113.5"},
        {"duration":"99999999999999999999h","scope":"Ip","type":"ban","value":"203.0.113.6"},
        {"scope":"Ip","type":"ban","value":"203.0.113.7"},
        {"duration":"4h","scope":null,"type":"ban","value":"203.0.113.8"},
        "203.0.113.9", [1], 5,
        {"duration":"4h","scope":"Ip","type":"ban","value":"203.0.113.10","id":1e400,"extra":{"x":[]}}
    ]}"#;
    let got = nets(&read(text, 5).unwrap());
    let want = [
        "skip new `203.0.113.1`: type `captcha` (only `ban` is applied)",
        "skip new `FR`: scope `Country` (only Ip and Range are applied)",
        "skip new `203.0.113.300`: scope Ip with a value that is not an address",
        "skip new `203.0.113.0/33`: scope Range with a value that is not a network",
        "skip new `203.0.113.2`: its `duration` is not a string",
        "skip new ``: its `value` is not a string",
        "skip new `203.0.113.4`: `1d` is not a duration",
        "skip new `203.0.113.5`: a new decision whose duration `-1s` is over",
        "skip new `203.0.113.6`: `99999999999999999999h` is longer than a Go duration can be",
        "skip new `203.0.113.7`: it has no `duration`",
        "skip new `203.0.113.8`: it has no `scope`",
        "skip new ``: an entry that is not an object",
        "skip new ``: an entry that is not an object",
        "skip new ``: an entry that is not an object",
        "new 203.0.113.10/32 14400",
    ];
    assert_eq!(got, want);
}

#[test]
fn a_stream_of_another_shape_is_an_error() {
    for text in [
        "[]",
        r#"{"new":{"a":1}}"#,
        r#"{"new":"x"}"#,
        r#"{"new":[{"value":"1.2.3.4"}"#,
        r#"{"new":[]}{"#,
        "<html>502 Bad Gateway</html>",
    ] {
        assert!(read(text, 1).is_err(), "{text}");
    }
}

#[test]
fn go_durations() {
    for (text, secs) in [
        ("0", 0.0),
        ("4h", 14400.0),
        ("3h59m57.6s", 14397.6),
        ("-1.5s", -1.5),
        ("300ms", 0.3),
        ("1h1m1s1ms1us1ns", 3661.001001001),
        ("2µs", 2e-6),
        ("+5m", 300.0),
    ] {
        assert!((go_duration(text).unwrap() - secs).abs() < 1e-9, "{text}");
    }
    for bad in [
        "", "-", "4", "1d", "h", "1.2.3s", ".s", "5m-3s", "4 h", "1e3s",
    ] {
        assert!(go_duration(bad).is_err(), "{bad}");
    }
}
