//! RemoteAddress values: whatever parses must be an address that prints back and parses
//! again to itself (it goes onto an iptables command line).
#![no_main]

use ampere::event::Matcher;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static MATCHER: std::cell::RefCell<Matcher> = std::cell::RefCell::new(Matcher::new());
}

fuzz_target!(|data: &[u8]| {
    let parsed = MATCHER.with(|m| m.borrow_mut().remote_address(data));
    if let Some(ip) = parsed {
        let text = ip.to_string();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':'));
        assert_eq!(text.parse::<std::net::IpAddr>().unwrap(), ip);
    }
});
