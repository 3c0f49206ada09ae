//! LAPI's decision stream as a hostile server shapes it: read in pieces split at
//! fuzzer-chosen points, as the daemon reads it off the socket. Nothing may panic; every
//! entry that comes out as a decision is a network and a duration Ampere can use, and the
//! same bytes give the same entries whatever the pieces.
#![no_main]

use ampere::crowdsec::decisions::{Item, List, StreamReader};
use libfuzzer_sys::fuzz_target;

fn read(body: &[u8], step: usize) -> (Vec<Item>, bool) {
    let mut r = StreamReader::new();
    let mut items = Vec::new();
    let mut ok = true;
    for piece in body.chunks(step) {
        if r.feed(piece, &mut |i| items.push(i)).is_err() {
            ok = false;
            break;
        }
    }
    (items, ok && r.finish().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s % 32) + 1, rest),
        None => return,
    };
    let (items, ok) = read(body, step);
    let (whole, whole_ok) = read(body, body.len().max(1));
    assert_eq!(ok, whole_ok);
    assert_eq!(items, whole);
    for i in &items {
        if let Item::Decision(d) = i {
            assert_eq!(d.net, d.net.trunc());
            if d.list == List::New {
                assert!(d.seconds > 0);
            }
        }
    }
});
