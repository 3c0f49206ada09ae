//! The AMI stream as an attacker shapes it: framed in chunks split at fuzzer-chosen points,
//! every message judged on the daemon's own pipeline (match, score, admit). Nothing may panic, and the
//! engine's table stays bounded.
#![no_main]

use ampere::ami::{Framer, Item};
use ampere::judge::{Judge, Time};
use libfuzzer_sys::fuzz_target;

fn config() -> ampere::config::Config {
    ampere::config::Config {
        table_size: 16,
        ..Default::default()
    }
}

thread_local! {
    // Compiled once: the pattern is fixed; `reset` gives each input a fresh engine.
    static JUDGE: std::cell::RefCell<Judge> = std::cell::RefCell::new(Judge::new(&config()));
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, so that line and message boundaries fall
    // everywhere.
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s % 64) + 1, rest),
        None => return,
    };
    JUDGE.with(|j| {
        let mut judge = j.borrow_mut();
        judge.reset(&config());
        let mut framer = Framer::new();
        for chunk in body.chunks(step) {
            framer.push(chunk, &mut |item| {
                if let Item::Message(m) = item {
                    let _ = m.is_response();
                    let _ = judge.judge(&m, Time::At { mono: 0, wall: 0 });
                }
            });
        }
        let table = judge.engine.table();
        assert!(table.len() <= table.capacity());
    });
});
