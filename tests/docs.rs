//! The documents' generated blocks (`ampere::docs`) are what the tables say: the README's
//! table of event kinds, manager.conf's `eventfilter` lines, the man page's list, the
//! sample configs' weights. A block that drifted fails here, naming the file and showing
//! the block it should be; `make docs` (this test with `AMPERE_WRITE_DOCS=1`) rewrites them.

use std::path::Path;

#[test]
fn every_generated_block_is_what_the_tables_say() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = std::env::var_os("AMPERE_WRITE_DOCS").is_some();
    let mut drifted = Vec::new();
    for b in ampere::docs::blocks() {
        let path = root.join(b.file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", b.file));
        let Some(current) = ampere::docs::current_block(&text, b.file, b.name) else {
            let (open, close) = ampere::docs::markers(b.file, b.name);
            panic!(
                "{}: no block `{}` (lines `{open}` and `{close}`)",
                b.file, b.name
            );
        };
        if current == b.text {
            continue;
        }
        if write {
            let new = ampere::docs::replace_block(&text, b.file, b.name, &b.text).unwrap();
            std::fs::write(&path, new).unwrap();
        } else {
            drifted.push(format!(
                "{}: block `{}` differs from the tables; it should read:\n{}",
                b.file, b.name, b.text
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "{}\n(`make docs` rewrites them)",
        drifted.join("\n")
    );
}

#[test]
fn the_shipped_eventfilter_lets_every_event_ampere_reads_through() {
    // Independently of the generator: each scored kind and each system event Ampere reads
    // has its line in the snippet (the snippet had lost three scored kinds once).
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/manager.conf.ampere"),
    )
    .unwrap();
    let names = ampere::kinds::KINDS
        .iter()
        .filter(|k| k.on_ami())
        .map(|k| k.name)
        .chain(ampere::kinds::SYSTEM_EVENTS.iter().map(|(n, _)| *n));
    for n in names {
        assert!(
            text.lines()
                .any(|l| l == format!("eventfilter = Event: {n}")),
            "etc/manager.conf.ampere lets no `{n}` through"
        );
    }
}
