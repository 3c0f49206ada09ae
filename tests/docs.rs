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

mod common;

/// What varies from run to run in `status` and `why` (times, pids, ports, rates, paths),
/// set to one value each, so that the quoted output is compared in everything else.
fn steady(text: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "2026-12-01 09:00:00"),
        (r"pid \d+", "pid 4242"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:5038"),
        (r"\d+ (ms|s|min|h|d) ago", "3 s ago"),
        (r"[\d.]+/s over the last minute, [\d.]+/s since start", "0.4/s over the last minute, 0.1/s since start"),
        (r"longest turn \d+ ms", "longest turn 1 ms"),
        (r"database: \d+ KiB", "database: 88 KiB"),
        (r"next attempt in \d+ ms", "next attempt in 250 ms"),
        (r"/tmp/\.tmp\w+/", "/var/lib/ampere/"),
        // The machine's own interfaces.
        (r"(?m)^own: .*$", "own:      addresses eth0 192.0.2.1, eth0 2001:db8:a3e::1; links eth0 192.0.2.0/24, eth0 2001:db8:a3e::/64"),
    ];
    let mut out = text.to_string();
    for (pattern, with) in rules {
        let re = pcre2::bytes::Regex::new(pattern).unwrap();
        let mut next = Vec::new();
        let mut last = 0;
        let bytes = out.as_bytes();
        for m in re.find_iter(bytes) {
            let m = m.unwrap();
            next.extend_from_slice(&bytes[last..m.start()]);
            next.extend_from_slice(with.as_bytes());
            last = m.end();
        }
        next.extend_from_slice(&bytes[last..]);
        out = String::from_utf8(next).unwrap();
    }
    out
}

/// The outputs the README quotes, as the binary prints them now: `make demo`'s, and
/// `status` and `why` of a daemon that read the same capture over AMI.
fn quoted_outputs() -> Vec<(&'static str, &'static str, String)> {
    use common::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = ampere()
        .arg("-c")
        .arg(root.join("etc/ampere.cfg"))
        .arg("--replay")
        .arg(root.join("etc/sample-attack.ami"))
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", printed(&demo));
    let capture = root.join("etc/sample-attack.ami").display().to_string();
    let server = AmiServer::start(vec![Plan::ReplayThenSilent { file: capture }]);
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the sample's ban", || setup.stored() == ["203.0.113.2"]);
    wait_for(10, "the whole sample read", || {
        setup
            .run(&["status", "keys"], "")
            .1
            .contains("events_total 20\n")
    });
    let status = setup.run(&["status"], "").1;
    let why = setup.run(&["why", "203.0.113.2"], "").1;
    drop(d);
    let help = ampere().arg("-h").output().unwrap();
    vec![
        (
            "README.md",
            "output-demo",
            String::from_utf8(demo.stdout).unwrap(),
        ),
        ("README.md", "output-status", steady(&status)),
        ("README.md", "output-why", steady(&why)),
        (
            "doc/operation.md",
            "output-help",
            String::from_utf8(help.stdout).unwrap(),
        ),
    ]
}

#[test]
fn the_quoted_outputs_are_what_the_binary_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = std::env::var_os("AMPERE_WRITE_DOCS").is_some();
    let mut drifted = Vec::new();
    for (file, name, output) in quoted_outputs() {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let want = format!("```\n{output}```\n");
        let current = ampere::docs::current_block(&text, file, name)
            .unwrap_or_else(|| panic!("{file}: no block `{name}`"));
        if current == want {
            continue;
        }
        if write {
            let new = ampere::docs::replace_block(&text, file, name, &want).unwrap();
            std::fs::write(&path, new).unwrap();
        } else {
            drifted.push(format!(
                "{file}: `{name}` is not what the binary prints; it should read:\n{want}"
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "{}\n(`make docs` rewrites them)",
        drifted.join("\n")
    );
}
