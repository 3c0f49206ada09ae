//! The log door: chan_iax2 reports nothing on AMI, so Ampere follows Asterisk's log
//! (`asterisk_log`) for its guesses. The real binary, the test AMI server over TCP, a real
//! file written while the daemon follows it (through rotation, truncation, cut lines and
//! hostile content), and `--replay` of the capture's log through the same path.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use common::*;

const LOG: &str = "iax2-brute-authdebug.messages.log";

fn append(path: &Path, text: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
        .write_all(text)
        .unwrap();
}

/// One wrong MD5 secret of an IAX2 registration from `addr`, as chan_iax2 logs it.
fn guess(addr: &str) -> String {
    format!("[2026-12-06 20:15:32] NOTICE[16979] chan_iax2.c: Host {addr} failed MD5 authentication for '2001' (04e71a7b2431beddb9464208688a0c97 != 3c9dc22d7360e16ebb9c62d72ae36a29)\n")
}

#[test]
fn the_iax2_capture_bans_the_attacker_and_never_the_phone() {
    // --replay of the capture's log: the same door, the same judge.
    let setup = Setup::new(None, "");
    let path = fixture_dir().join(LOG);
    let (code, out, err) = setup.run(&["--replay", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    let bans: Vec<&str> = out.lines().filter(|l| l.starts_with("ban ")).collect();
    assert_eq!(
        bans,
        ["ban 203.0.113.2 Iax2AuthFailed 2001 15 weak"],
        "{out}"
    );

    // The daemon: the capture's AMI stream over TCP (the phone registers IAX2/2001 from
    // 10.99.1.2: two PeerStatus), its log written line by line into the file it follows.
    let server = AmiServer::start(vec![Plan::Replay {
        file: "iax2-brute-authdebug.ami".into(),
        speed: 0.0,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    std::fs::write(
        &log,
        b"[2026-12-06 20:15:00] NOTICE[1] chan_iax2.c: before the start: not read\n",
    )
    .unwrap();
    let setup = Setup::new(
        Some(server.addr),
        &format!("asterisk_log = {}\n", log.display()),
    );
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in to AMI"));
    wait_for(10, "the follower", || {
        setup.status_key("log_door") == Some(1)
    });
    let text = std::fs::read(fixture_dir().join(LOG)).unwrap();
    // In pieces that cut lines in the middle.
    for piece in text.chunks(97) {
        append(&log, piece);
    }
    wait_for(10, "the attacker's ban", || {
        setup.stored() == ["203.0.113.2"]
    });
    wait_for(10, "every line", || {
        setup.status_key("log_lines") == Some(40)
    });
    assert_eq!(setup.status_key("log_events"), Some(32));
    assert_eq!(d.stop(), 0);
    assert_eq!(setup.stored(), ["203.0.113.2"]);
    let line = setup
        .log()
        .lines()
        .find(|l| l.contains("ban 203.0.113.2:"))
        .map(String::from)
        .unwrap();
    assert!(
        line.contains("Iax2AuthFailed from account `2001` (IAX2), penalty 15; on evidence a forged packet can make"),
        "{line}"
    );
}

#[test]
fn the_follower_survives_rotation_truncation_and_hostile_lines() {
    let (_tx, rx) = mpsc::channel::<Vec<u8>>();
    let server = AmiServer::start(vec![Plan::Feed(Arc::new(Mutex::new(rx)))]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    std::fs::write(&log, b"").unwrap();
    let setup = Setup::new(
        Some(server.addr),
        &format!("asterisk_log = {}\ntrust = 192.0.2.0/24\n", log.display()),
    );
    let d = setup.spawn();
    wait_for(10, "login", || setup.log().contains("logged in to AMI"));
    wait_for(10, "the follower", || {
        setup.status_key("log_door") == Some(1)
    });

    // Three guesses, the second cut in two writes.
    append(&log, guess("198.51.100.1").as_bytes());
    let g = guess("198.51.100.1");
    append(&log, &g.as_bytes()[..40]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    append(&log, &g.as_bytes()[40..]);
    append(&log, guess("198.51.100.1").as_bytes());
    wait_for(10, "the first ban", || setup.stored() == ["198.51.100.1"]);

    // logrotate: renamed, more to the old file, then a new one.
    std::fs::rename(&log, dir.path().join("messages.1")).unwrap();
    append(
        &dir.path().join("messages.1"),
        guess("198.51.100.2").as_bytes(),
    );
    for _ in 0..3 {
        append(&log, guess("198.51.100.2").as_bytes());
    }
    wait_for(10, "the ban after rotation", || {
        setup.stored().contains(&"198.51.100.2".to_string())
    });
    assert_eq!(setup.status_key("log_rotations"), Some(1));

    // Truncated (copytruncate), then written again.
    std::fs::write(&log, b"").unwrap();
    wait_for(10, "the truncation seen", || {
        setup.status_key("log_truncations") == Some(1)
    });
    for _ in 0..3 {
        append(&log, guess("198.51.100.3").as_bytes());
    }
    wait_for(10, "the ban after truncation", || {
        setup.stored().contains(&"198.51.100.3".to_string())
    });

    // Hostile: 16 MiB without a line break, binary, an address with a zone, a trusted
    // address; then a marker that must still be read.
    let big = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        append(&log, &big);
    }
    append(&log, b"\n");
    append(&log, b"[2026-12-06 20:15:32] NOTICE[1] chan_iax2.c: No registration for peer '\0\xff' (from 198.51.100.9)\n");
    append(&log, b"[2026-12-06 20:15:32] NOTICE[1] chan_iax2.c: No registration for peer 'x' (from fe80::1%eth0)\n");
    for _ in 0..3 {
        append(&log, guess("192.0.2.50").as_bytes());
    }
    for _ in 0..3 {
        append(&log, guess("198.51.100.4").as_bytes());
    }
    wait_for(20, "the marker's ban", || {
        setup.stored().contains(&"198.51.100.4".to_string())
    });
    assert_eq!(setup.status_key("log_too_long"), Some(1));
    assert_eq!(setup.status_key("log_binary"), Some(1));
    assert_eq!(setup.status_key("log_bad_address"), Some(1));
    let (_, status, _) = setup.run(&["status"], "");
    assert_eq!(d.stop(), 0);
    assert_eq!(
        setup.stored(),
        [
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4"
        ]
    );
    assert!(
        status.contains(&format!("log door: following {}", log.display())),
        "{status}"
    );
    println!(
        "measured: {}",
        status.lines().find(|l| l.starts_with("log door")).unwrap()
    );
}

#[test]
fn iax2_loaded_without_the_log_door_is_said_once() {
    let server = AmiServer::start(vec![Plan::Custom(Vec::new())]);
    server.answer("IAXpeers", &capture_answer("sip-actions.ami", "3"));
    let setup = Setup::new(Some(server.addr), "");
    let d = setup.spawn();
    wait_for(10, "the warning", || {
        setup
            .log()
            .contains("chan_iax2 is loaded, and it reports no security event on AMI")
    });
    let (_, status, _) = setup.run(&["status"], "");
    assert_eq!(d.stop(), 0);
    assert!(
        status.contains(
            "log door: off (asterisk_log unset) (chan_iax2 is loaded: its guesses are not seen)"
        ),
        "{status}"
    );
    assert_eq!(setup.log().matches("chan_iax2 is loaded").count(), 1);
}
