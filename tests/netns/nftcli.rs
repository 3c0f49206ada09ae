//! The daemon's `nft -i` child (src/firewall/nft/cli.rs) on the real kernel: bans go through
//! it; killed or stopped, its batch execs nft and a new child takes over; a refused command
//! leaves it running; where nft has no interactive mode, every batch execs nft and `status`
//! says so.

use super::*;

/// The pid of the daemon's `nft` child, if it has one.
fn nft_child(daemon: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`
        let (comm, rest) = stat.split_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (comm.ends_with("(nft") && ppid == daemon).then_some(pid)
    })
}

fn attack(pbx: &Pbx, addr: &str) {
    for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", addr)]) {
        pbx.send(&e);
    }
}

fn status(pbx: &Pbx) -> String {
    pbx.setup.run(&["status"], "").1
}

pub fn nftcli_scenario() {
    let pbx = Pbx::new("backend = nft\naudit_interval = 1\n");
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    let first = nft_child(d.pid()).expect("no nft -i child");
    attack(&pbx, "192.0.2.71");
    wait_for(5, "the ban through the child", || {
        in_kernel("nft", "192.0.2.71")
    });
    assert!(
        status(&pbx).contains("nft -i kept running"),
        "{}",
        status(&pbx)
    );
    // The kernel walks the address sets for expired elements once an hour, not each second
    // (a walk of a million delayed the bans that met it), the interval sets as it likes.
    for (set, gc) in [("v4", true), ("v6", true), ("net4", false), ("net6", false)] {
        let listed = must(&["nft", "list", "set", "inet", "ampere", set]);
        assert_eq!(listed.contains("gc-interval 1h"), gc, "{listed}");
    }
    // Killed: the next batch is one exec, and a new child comes.
    sh(&["kill", "-KILL", &first.to_string()]);
    attack(&pbx, "192.0.2.72");
    wait_for(5, "the ban with the child killed", || {
        in_kernel("nft", "192.0.2.72")
    });
    wait_for(5, "a new child", || {
        nft_child(d.pid()).is_some_and(|p| p != first)
    });
    // The audits after it find the kernel as the database says.
    let audits = pbx.setup.status_key("audits").unwrap();
    wait_for(10, "two audits", || {
        pbx.setup
            .status_key("audits")
            .is_some_and(|a| a >= audits + 2)
    });
    assert_eq!(
        pbx.setup.status_key("repaired").unwrap(),
        0,
        "{}",
        pbx.setup.log()
    );
    assert_eq!(
        pbx.setup.status_key("strays_removed").unwrap(),
        0,
        "{}",
        pbx.setup.log()
    );
    // Stopped: the batch waits for the bound (5 s), then execs nft.
    let second = nft_child(d.pid()).unwrap();
    sh(&["kill", "-STOP", &second.to_string()]);
    let t = Instant::now();
    attack(&pbx, "192.0.2.73");
    wait_for(15, "the ban with the child stopped", || {
        in_kernel("nft", "192.0.2.73")
    });
    println!(
        "measured: ban with a stopped nft -i in {} ms",
        t.elapsed().as_millis()
    );
    wait_for(5, "the log", || {
        pbx.setup.log().contains("no answer within 5s")
    });
    // Refused (an interval overlapping one in place): the child stays.
    let (code, _, err) = pbx.setup.run(&["-a"], "198.18.0.0/15\n");
    assert_eq!(code, 0, "{err}");
    let third = nft_child(d.pid()).expect("no child after the stopped one");
    let (code, _, _) = pbx.setup.run(&["-a"], "198.18.0.0/16\n");
    assert_ne!(code, 0, "nft took an interval that overlaps one in place");
    attack(&pbx, "192.0.2.74");
    wait_for(5, "the ban after a refusal", || {
        in_kernel("nft", "192.0.2.74")
    });
    assert_eq!(
        nft_child(d.pid()),
        Some(third),
        "the child was replaced after a refusal"
    );
    assert_eq!(d.stop(), 0);
}

/// An nft built without its interactive CLI (OpenWrt): `-i` fails at once.
pub fn no_cli_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("nft");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -i ] && { echo 'Error: interactive CLI not supported in this build' >&2; exit 1; }; done\nexec /usr/sbin/nft \"$@\"\n",
    )
    .unwrap();
    sh(&["chmod", "755", wrapper.to_str().unwrap()]);
    let pbx = Pbx::new(&format!("backend = nft\nnft = {}\n", wrapper.display()));
    let d = pbx.setup.spawn();
    pbx.logged_in(1);
    attack(&pbx, "192.0.2.81");
    wait_for(5, "the ban by exec", || in_kernel("nft", "192.0.2.81"));
    let s = status(&pbx);
    assert!(s.contains("nft -i unavailable"), "{s}");
    assert!(s.contains("interactive CLI not supported"), "{s}");
    assert_eq!(
        pbx.setup
            .log()
            .matches("its interactive mode does not work here")
            .count(),
        1
    );
    assert_eq!(d.stop(), 0);
}

/// `-d` of more than a few: whatever the sets still hold (some gone before, as when their
/// kernel timeout ran out), all go in one transaction, and the set of addresses is not
/// listed for it (a listing of a million for every part of a `-d` of a million took 128 s).
pub fn many_removed_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let wrapper = dir.path().join("nft");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh
echo \"$*\" >> {}\nexec /usr/sbin/nft \"$@\"\n",
            calls.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "755", wrapper.to_str().unwrap()]);
    let pbx = Pbx::new(&format!("backend = nft\nnft = {}\n", wrapper.display()));
    let hosts: Vec<String> = (1..=100).map(|i| format!("198.18.0.{i}")).collect();
    let nets = ["198.19.1.0/24", "198.19.2.0/24"];
    let all: Vec<String> = hosts
        .iter()
        .cloned()
        .chain(nets.map(String::from))
        .collect();
    let (code, _, err) = pbx.setup.run(&["-a"], &all.join("\n"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(kernel_bans("nft").len(), 102);
    // Gone from the kernel before the `-d`: 30 addresses and a network.
    for (set, gone) in [
        ("v4", hosts[..30].join(", ")),
        ("net4", nets[1].to_string()),
    ] {
        let elems = format!("{{ {gone} }}");
        sh(&["nft", "delete", "element", "inet", "ampere", set, &elems]);
    }
    std::fs::write(&calls, "").unwrap();
    let (code, _, err) = pbx.setup.run(&["-d"], &all.join("\n"));
    assert_eq!(code, 0, "{err}");
    assert!(kernel_bans("nft").is_empty(), "{:?}", kernel_bans("nft"));
    assert!(pbx.setup.stored().is_empty());
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        !calls.contains("list set inet ampere v4"),
        "the addresses' set was listed for a -d:\n{calls}"
    );
    println!("measured: nft: -d of 102 with 31 gone from the kernel before: all removed, the addresses' set not listed");
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see nft_removes_many_without_listing_its_addresses)"]
fn inner_many_removed() {
    if inside().is_some() {
        many_removed_scenario();
    }
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see nft_bans_go_through_one_nft_i_child)"]
fn inner_nftcli() {
    if inside().is_some() {
        nftcli_scenario();
    }
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see an_nft_without_its_interactive_mode_is_execd)"]
fn inner_no_cli() {
    if inside().is_some() {
        no_cli_scenario();
    }
}
