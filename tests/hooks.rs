//! The hook runner (`ampere --run-hook`): every process a hook starts is gone at its
//! timeout, `setsid` or not, and an account never reaches a hook as an option. This is the
//! kernel's process handling (a subreaper, process groups), tested natively: under
//! qemu-user the runner's orphans were not gone within 5 s (the armv7 run of 2026-12-07),
//! so CI's runs under the emulator (`--test cli --test daemon`) leave this file out.

mod common;

use std::time::Instant;

use common::*;

#[test]
fn a_killed_hook_takes_its_children_along_and_an_account_is_never_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.out");
    let onban = dir.path().join("onban");
    // A shell hook whose children outlive a kill of the shell alone, one of them in a
    // session of its own (setsid), one orphaned by a double fork into another session.
    let lock = exec_lock();
    std::fs::write(
        &onban,
        format!(
            "#!/bin/sh\nprintf '[%s] [%s]\\n' \"$3\" \"$AMPERE_ACCOUNT\" >> {o}\nsetsid sleep 27.1828 &\n( setsid sh -c 'sleep 16.1803' & )\nsleep 31.4159\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&onban, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    drop(lock);
    let server = AmiServer::start(vec![Plan::Custom(
        crf("IPV4/TCP/198.51.100.62/5060", "-rf /").repeat(15),
    )]);
    let setup = Setup::new(
        Some(server.addr),
        &format!("onban = {}\nhook_timeout = 1\n", onban.display()),
    );
    let d = setup.spawn();
    wait_for(10, "the hook", || out.exists());
    let alive = |what: &str| sh(&["pgrep", "-f", what]).0;
    wait_for(5, "its children running", || {
        alive("sleep 27.1828") && alive("sleep 16.1803")
    });
    let started = Instant::now();
    wait_for(10, "the hook killed", || setup.log().contains("killed"));
    let log = setup.log();
    assert!(
        log.contains("ran past hook_timeout (1s): killed, with every process it started"),
        "{log}"
    );
    for what in ["sleep 31.4159", "sleep 27.1828", "sleep 16.1803"] {
        wait_for(5, &format!("`{what}` gone too"), || !alive(what));
    }
    println!(
        "measured: the hook and its three descendants gone {:.2} s after they were seen running (hook_timeout 1 s)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(d.stop(), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, "[\\x2drf /] [-rf /]\n");
}

#[test]
fn a_hook_that_ends_at_once_leaves_no_process_behind_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let onban = dir.path().join("onban");
    let lock = exec_lock();
    std::fs::write(&onban, "#!/bin/sh\nsetsid sleep 14.1421 &\nexit 0\n").unwrap();
    std::fs::set_permissions(&onban, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    drop(lock);
    let server = AmiServer::start(vec![Plan::Custom(
        crf("IPV4/TCP/198.51.100.63/5060", "1001").repeat(15),
    )]);
    let setup = Setup::new(
        Some(server.addr),
        &format!("onban = {}\nhook_timeout = 1\n", onban.display()),
    );
    let d = setup.spawn();
    let alive = || sh(&["pgrep", "-f", "sleep 14.1421"]).0;
    wait_for(10, "the hook's child", alive);
    wait_for(5, "the hook's child gone at its timeout", || !alive());
    wait_for(5, "the log line", || {
        setup.log().contains("ran past hook_timeout")
    });
    assert_eq!(d.stop(), 0);
}
