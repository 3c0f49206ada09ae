//! Asterisk's log as an attacker shapes it (the log door): bytes split into lines at
//! fuzzer-chosen chunk boundaries, every line judged on the daemon's own pipeline. Nothing
//! may panic, no line longer than the bound reaches the judge, and every event the door
//! makes is weak evidence naming an address that parses.
#![no_main]

use ampere::judge::{Judge, Time};
use ampere::logdoor::{Lines, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fn config() -> ampere::config::Config {
    ampere::config::Config {
        table_size: 16,
        ..Default::default()
    }
}

thread_local! {
    static JUDGE: std::cell::RefCell<Judge> = std::cell::RefCell::new(Judge::new(&config()));
}

fuzz_target!(|data: &[u8]| {
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s % 64) + 1, rest),
        None => return,
    };
    JUDGE.with(|j| {
        let mut judge = j.borrow_mut();
        judge.reset(&config());
        let mut lines = Lines::default();
        for chunk in body.chunks(step) {
            lines.push(chunk, &mut |line| {
                assert!(line.len() <= MAX_LINE);
                if let Some(judged) = judge.judge_line(line, Time::At { mono: 0, wall: 0 }) {
                    assert_eq!(judged.event.evidence, ampere::score::Evidence::Weak);
                    assert_eq!(judged.event.service, b"IAX2");
                }
            });
        }
    });
});
