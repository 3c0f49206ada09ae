//! An IAX2 guesser seen only in Asterisk's log (chan_iax2 reports nothing on AMI): three
//! wrong MD5 secrets from the attacker's address in the followed log, and the real kernel
//! drops it on IAX2's 4569 and on SIP's 5060.

use std::io::Write;

use super::*;

pub fn iax2_scenario(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    std::fs::write(&log, b"").unwrap();
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nasterisk_log = {}\n",
        log.display()
    ));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let iax = Prober::start(&format!("{PBX4}:4569"));
    let sip = Prober::start(&format!("{PBX4}:5060"));
    assert!(
        iax.answered_within(300) > 0,
        "4569 unanswered before the ban"
    );
    assert!(
        sip.answered_within(300) > 0,
        "5060 unanswered before the ban"
    );
    let line = format!(
        "[2026-12-06 20:15:32] NOTICE[16979] chan_iax2.c: Host {ATK4} failed MD5 authentication for '2001' (04e71a7b2431beddb9464208688a0c97 != 3c9dc22d7360e16ebb9c62d72ae36a29)\n"
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let written = Instant::now();
    for _ in 0..3 {
        f.write_all(line.as_bytes()).unwrap();
    }
    wait_for(10, "the ban", || in_kernel(backend, ATK4));
    println!(
        "measured: {backend}: from the log line to the kernel in {} ms",
        written.elapsed().as_millis()
    );
    thread::sleep(Duration::from_millis(100));
    assert_eq!(iax.answered_within(500), 0, "4569 still answered");
    assert_eq!(sip.answered_within(500), 0, "5060 still answered");
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_iax2() {
    if inside().is_some() {
        iax2_scenario(&backend());
    }
}
