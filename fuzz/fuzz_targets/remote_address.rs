//! RemoteAddress values: whatever parses must be an address that prints back and parses
//! again to itself (it goes onto an iptables command line), and the hand-read plain form
//! must never disagree with the PCRE2 pattern.
#![no_main]

use ampere::event::{plain_remote, Matcher, Plain};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static MATCHER: std::cell::RefCell<Matcher> = std::cell::RefCell::new(Matcher::new());
}

fuzz_target!(|data: &[u8]| {
    let (parsed, by_pattern) = MATCHER.with(|m| {
        let mut m = m.borrow_mut();
        (m.remote_address(data), m.remote_address_by_pattern(data))
    });
    assert_eq!(parsed, by_pattern);
    match plain_remote(data) {
        Plain::Addr(ip) => assert_eq!(Some(ip), by_pattern),
        Plain::Invalid => assert_eq!(None, by_pattern),
        Plain::Unread => {}
    }
    if let Some(ip) = parsed {
        let text = ip.to_string();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':'));
        assert_eq!(text.parse::<std::net::IpAddr>().unwrap(), ip);
    }
});
