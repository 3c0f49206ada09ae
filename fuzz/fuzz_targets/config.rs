//! ampere.cfg parsing: any bytes give a config or an error naming a line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ampere::config::parse(data, "fuzz.cfg") {
        Ok(l) => {
            let _ = l.config.describe();
        }
        Err(e) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        }
    }
});
