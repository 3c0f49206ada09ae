//! The `-a`/`-d` reader: every accepted line is a network whose text contains only address
//! characters (it goes onto an iptables command line); every rejected line has a number.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    for r in ampere::admin::read_addresses(data) {
        match r {
            Ok((line, net)) => {
                assert!(line >= 1 && line <= lines);
                let text = ampere::addr::net_text(&net);
                assert!(
                    text.bytes()
                        .all(|b| b.is_ascii_hexdigit() || b".:/".contains(&b)),
                    "{text}"
                );
            }
            Err(bad) => assert!(bad.line >= 1 && bad.line <= lines),
        }
    }
});
