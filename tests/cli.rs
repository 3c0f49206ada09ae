//! The admin command line, run as a real binary with the firewall commands pointed at a
//! recorder.

mod common;

use common::*;

fn ban_call(tool: &str, op: &str, net: &str) -> Call {
    Call {
        cmd: tool.into(),
        args: ["-w", op, "ampere", "-s", net, "-j", "DROP"]
            .map(String::from)
            .to_vec(),
        stdin: String::new(),
    }
}

fn check_call(tool: &str) -> Call {
    Call {
        cmd: tool.into(),
        args: ["-w", "-S", "ampere", "1"].map(String::from).to_vec(),
        stdin: String::new(),
    }
}

#[test]
fn add_from_a_pipe_with_good_and_bad_lines() {
    let s = Setup::new(None, "trust = 192.168.0.0/24\n");
    let input = "# blocklist\n203.0.113.5\n\nnot-an-ip\n198.51.100.0/24 ; SBL1\n2001:db8::66\n192.168.0.9\n300.1.1.1\n";
    let (code, _out, err) = s.run(&["-a"], input);
    assert_eq!(code, 1, "a bad line must fail the run: {err}");
    assert!(
        err.contains("stdin:4: not an address or network: `not-an-ip`"),
        "{err}"
    );
    assert!(
        err.contains("stdin:7: 192.168.0.9/32 is protected"),
        "{err}"
    );
    assert!(err.contains("stdin:8: not an address"), "{err}");
    assert!(err.contains("3 banned, 0 already banned"), "{err}");
    // A list goes in as batches, one command per family (a single ban is a plain `-I`).
    assert_eq!(
        s.rec.calls(),
        vec![
            check_call("iptables"),
            check_call("ip6tables"),
            Call {
                cmd: "iptables-restore".into(),
                args: ["-w", "--noflush"].map(String::from).to_vec(),
                stdin: "*filter\n-I ampere -s 203.0.113.5/32 -j DROP\n-I ampere -s 198.51.100.0/24 -j DROP\nCOMMIT\n".into(),
            },
            ban_call("ip6tables", "-I", "2001:db8::66/128"),
        ]
    );
    assert_eq!(
        s.stored(),
        ["198.51.100.0/24", "2001:db8::66", "203.0.113.5"]
    );

    // Adding again changes nothing in the kernel; all lines good = exit 0.
    let (code, _, err) = s.run(&["--add"], "203.0.113.5\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 banned, 1 already banned"), "{err}");
    assert_eq!(s.rec.bans().len(), 3);
}

#[test]
fn list_shows_aligned_columns() {
    let s = Setup::new(None, "");
    let (code, _, err) = s.run(&["-a"], "203.0.113.5\n2001:db8:1234:5678::1\n");
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = s.run(&["-l"], "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ADDRESS "), "{out}");
    for col in ["SINCE", "COUNT", "REASON", "EXPIRES"] {
        let pos = lines[0].find(col).unwrap();
        // every row has a column boundary where the header has one
        for row in &lines[1..3] {
            assert_eq!(&row[pos - 2..pos], "  ", "{col} misaligned in {row:?}");
        }
    }
    let row = lines
        .iter()
        .find(|l| l.starts_with("203.0.113.5 "))
        .expect("row");
    assert!(row.contains("manual") && row.ends_with("never"), "{out}");
    assert_eq!(lines[3], "2 ban(s)");
}

#[test]
fn del_removes_from_database_and_firewall() {
    let s = Setup::new(None, "");
    s.run(&["-a"], "203.0.113.5\n2001:db8::66\n");
    let (code, _, err) = s.run(&["-d"], "203.0.113.5\n192.0.2.99\n");
    assert_eq!(
        code, 1,
        "an address that is not banned is a failed line: {err}"
    );
    assert!(err.contains("stdin:2: 192.0.2.99 is not banned"), "{err}");
    let calls = s.rec.calls();
    assert_eq!(
        calls.last().unwrap(),
        &ban_call("iptables", "-D", "203.0.113.5/32")
    );
    assert_eq!(s.stored(), ["2001:db8::66"]);
    let (code, _, err) = s.run(&["--del"], "2001:db8::66\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s.rec.calls().last().unwrap(),
        &ban_call("ip6tables", "-D", "2001:db8::66/128")
    );
    assert!(s.stored().is_empty());
}

#[test]
fn firewall_failure_keeps_the_ban_recorded_and_fails() {
    let s = Setup::new(None, "");
    s.rec.fail("iptables", true);
    let (code, _, err) = s.run(&["-a"], "203.0.113.5\n");
    // the chain check fails first: nothing is recorded
    assert_eq!(code, 1);
    assert!(err.contains("iptables -N ampere"), "{err}");
    assert!(s.stored().is_empty());
}

#[test]
fn shell_metacharacters_are_rejected_and_nothing_runs() {
    let s = Setup::new(None, "");
    let marker = s.dir.path().join("pwned");
    let m = marker.display();
    let input = format!(
        "1.2.3.4;touch {m}\n$(touch {m})\n`touch {m}`\n1.2.3.4 && touch {m}\n1.2.3.4|touch {m}\n1.2.3.4\ttouch {m}\n"
    );
    let (code, _, err) = s.run(&["-a"], &input);
    assert_eq!(code, 1);
    for line in 1..=6 {
        assert!(
            err.contains(&format!("stdin:{line}: not an address")),
            "line {line}: {err}"
        );
    }
    assert!(!marker.exists(), "a metacharacter was interpreted");
    assert!(s.rec.calls().is_empty(), "{:?}", s.rec.calls());
    assert!(s.stored().is_empty());
}

#[test]
fn ssh_client_address_needs_force() {
    let s = Setup::new(None, "");
    let run = |force: bool| {
        let flags: &[&str] = if force { &["-a", "--force"] } else { &["-a"] };
        run_from(&s, "198.51.100.20 51000 22", flags, b"198.51.100.0/24\n")
    };
    let (code, err) = run(false);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("contains the address you are connected from"),
        "{err}"
    );
    assert!(s.stored().is_empty());
    let (code, err) = run(true);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s.stored(), ["198.51.100.0/24"]);
}

#[test]
fn add_refuses_a_terminal() {
    // `script` gives the child a pseudo-terminal as stdin.
    let s = Setup::new(None, "");
    let cmd = format!("{} {BIN} -c {} -a", runner().join(" "), s.cfg.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not from a terminal"), "{text}");
    assert_eq!(out.status.code(), Some(2));
    assert!(s.rec.calls().is_empty());
}

#[test]
fn test_mode_prints_effective_settings_masked() {
    let s = Setup::new(None, "pass = hunter2\ntrust = 10.0.0.0/8\nfrob = 1\n");
    let (code, out, err) = s.run(&["-t"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pass               = ********"), "{out}");
    assert!(!out.contains("hunter2"));
    assert!(out.contains("trust              = 10.0.0.0/8"), "{out}");
    assert!(err.contains("unknown key `frob`"), "{err}");
    assert!(err.contains("ampere.cfg:"), "warning names the file: {err}");
}

#[test]
fn bad_config_exits_2_naming_file_and_line() {
    let s = Setup::new(None, "trust = 10.0.0.0/40\n");
    let (code, _, err) = s.run(&["-t"], "");
    assert_eq!(code, 2);
    let lines = std::fs::read_to_string(&s.cfg).unwrap().lines().count();
    assert!(
        err.contains(&format!("ampere.cfg:{lines}: trust: `10.0.0.0/40`")),
        "{err}"
    );
}

#[test]
fn missing_config_explicit_is_an_error() {
    let out = ampere()
        .args(["-c", "/nonexistent/ampere.cfg", "-t"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ampere.cfg"));
}

#[test]
fn help_version_and_bad_usage() {
    let out = ampere().arg("-h").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--replay FILE"));
    let out = ampere().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("ampere {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("linux"), "{v}");
    let out = ampere().args(["-a", "-l"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn log_file_option_appends() {
    let s = Setup::new(None, "");
    let log = s.dir.path().join("out.log");
    let (code, _, _) = s.run(&["-o", log.to_str().unwrap(), "-a"], "203.0.113.77\n");
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("info: banned 203.0.113.77 (manual)"),
        "{text}"
    );
    // timestamped: YYYY-MM-DD HH:MM:SS
    assert_eq!(text.as_bytes()[4], b'-');
    assert_eq!(text.as_bytes()[13], b':');
}

#[test]
fn list_into_a_closed_pipe_exits_quietly() {
    let s = Setup::new(None, "");
    let lines: String = (1..=200)
        .map(|i| format!("198.51.{}.{}\n", i / 250, i % 250 + 1))
        .collect();
    assert_eq!(s.run(&["-a"], &lines).0, 0);
    // The reader goes away at once, as `ampere -l | head -1` or `| grep -q` do.
    let mut child = ampere()
        .arg("-c")
        .arg(&s.cfg)
        .arg("-l")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn add_of_an_active_temporary_ban_makes_it_permanent() {
    let s = Setup::new(None, "");
    {
        let mut store = ampere::store::Store::open(&s.db).unwrap();
        let net = ampere::addr::parse_net("203.0.113.9").unwrap();
        let b = ampere::ban::BanRequest::new(
            net,
            ampere::ban::Origin::Daemon,
            "FailedACL",
            1,
            ampere::ban::Lifetime::Until(4_000_000_000),
        );
        store.record(&[b], &|_, _| None).unwrap();
    }
    let (code, _, err) = s.run(&["-a"], "203.0.113.9\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 banned, 1 already banned, 1 of them made permanent"),
        "{err}"
    );
    let store = ampere::store::Store::open(&s.db).unwrap();
    let all = store.active().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].expires, all[0].origin),
        (None, ampere::ban::Origin::Manual)
    );
    // The kernel's entry is put back (without a timeout, where the backend has them).
    assert_eq!(
        s.rec.bans(),
        [("iptables".to_string(), "203.0.113.9/32".to_string())]
    );
    // Again: nothing left to change.
    let (code, _, err) = s.run(&["-a"], "203.0.113.9\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 banned, 1 already banned\n"), "{err}");
}

#[test]
fn mapped_ipv6_addresses_are_the_ipv4_hosts_they_name() {
    let s = Setup::new(None, "");
    // Loopback in disguise is still loopback.
    let (code, _, err) = s.run(&["-a"], "::ffff:127.0.0.1\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("127.0.0.1/32 is protected"), "{err}");
    // And a mapped attacker is banned where its packets are: in the IPv4 chain.
    let (code, _, err) = s.run(&["-a"], "::ffff:192.0.2.77\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.stored(), ["192.0.2.77"]);
    assert_eq!(
        s.rec.bans(),
        [("iptables".to_string(), "192.0.2.77/32".to_string())]
    );
    let (code, _, err) = s.run(&["-d"], "::ffff:192.0.2.77\n");
    assert_eq!(code, 0, "{err}");
    assert!(s.stored().is_empty());
    // The admin's own address, given as mapped in SSH_CLIENT, needs --force too.
    let (code, err) = run_from(
        &s,
        "::ffff:198.51.100.20 51000 22",
        &["-a"],
        b"198.51.100.20\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("connected from"));
}

/// Runs the binary with `args` as an admin logged in by SSH from `ssh_client`, `input` on
/// stdin; returns its exit status and stderr.
fn run_from(s: &Setup, ssh_client: &str, args: &[&str], input: &[u8]) -> (Option<i32>, String) {
    let mut cmd = ampere();
    cmd.arg("-c").arg(&s.cfg).args(args);
    cmd.env("SSH_CLIENT", ssh_client)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut c = cmd.spawn().unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(input).unwrap();
    let o = c.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn endless_or_huge_input_is_refused_with_a_short_error() {
    let out = ampere().args(["-c", "/dev/zero", "-t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/zero: larger than 1024 KiB"), "{err}");
    let s = Setup::new(None, "");
    let input = format!("{}\n203.0.113.5\n", "1".repeat(10 << 20));
    let (code, _, err) = s.run(&["-a"], &input);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stdin:1: line longer than 4096 bytes"),
        "{err}"
    );
    assert!(
        err.len() < 1000,
        "the error echoes the line: {} bytes",
        err.len()
    );
    assert_eq!(s.stored(), ["203.0.113.5"], "the next line is still read");
}
