//! The AMI stream as an attacker shapes it: framed in chunks split at fuzzer-chosen points,
//! every message matched and scored. Nothing may panic, and the engine's table stays bounded.
#![no_main]

use ampere::ami::{Framer, Item};
use ampere::engine::Engine;
use ampere::event::{Matcher, Parsed};
use libfuzzer_sys::fuzz_target;

thread_local! {
    // Compiled once: the pattern is fixed, and compiling per input would starve the fuzzer.
    static MATCHER: std::cell::RefCell<Matcher> = std::cell::RefCell::new(Matcher::new());
}

fuzz_target!(|data: &[u8]| {
    let cfg = ampere::config::Config {
        table_size: 16,
        ..Default::default()
    };
    let mut engine = Engine::new(&cfg);
    let mut framer = Framer::new();
    // The first byte picks the chunk size, so that line and message boundaries fall
    // everywhere.
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s % 64) + 1, rest),
        None => return,
    };
    for chunk in body.chunks(step) {
        framer.push(chunk, &mut |item| {
            if let Item::Message(m) = item {
                let _ = m.is_response();
                MATCHER.with(|mt| {
                    if let Parsed::Security(ev) = mt.borrow_mut().parse(m) {
                        engine.feed(ev.kind, ev.service, ev.addr, 0);
                    }
                });
            }
        });
    }
    assert!(engine.table().len() <= engine.table().capacity());
});
