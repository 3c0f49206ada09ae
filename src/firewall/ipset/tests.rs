//! The ipset backend against a stand-in `ipset` that logs what it is asked.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A stand-in `ipset` that speaks the interactive protocol: logs what it is asked,
/// answers `test` on stderr, reports lines with "bad" as errors and exits at "die".
fn fake(dir: &Path) -> (Ipset, PathBuf) {
    let log = dir.join("log");
    let script = format!(
        r#"#!/bin/sh
log="{log}"
if [ "$1" = "-" ]; then
  echo START >> "$log"
  while IFS= read -r line; do
    case "$line" in
      "test "*) set -- $line; echo "$3 is NOT in set $2." >&2 ;;
      *bad*) echo "ipset v7.17: Syntax error: $line" >&2 ;;
      *die*) exit 1 ;;
      *) echo "CMD $line" >> "$log" ;;
    esac
  done
  exit 0
fi
if [ "$1" = restore ]; then
  while IFS= read -r line; do echo "RESTORE $line" >> "$log"; done
  exit 0
fi
echo "EXEC $*" >> "$log"
"#,
        log = log.display()
    );
    let bin = dir.join("ipset");
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = crate::config::parse(
        format!("backend = ipset\nipset = {}\n", bin.display()).as_bytes(),
        "t",
    )
    .unwrap()
    .config;
    (Ipset::new(&cfg), log)
}

fn entry(s: &str) -> Entry {
    Entry {
        net: crate::addr::parse_net(s).unwrap(),
        expires: None,
    }
}

const NOW: i64 = 1_800_000_000;

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bans_go_through_one_running_ipset_and_errors_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, log) = fake(dir.path());
    fw.ban(&entry("192.0.2.1"), NOW).unwrap();
    fw.ban_many(&[entry("192.0.2.2"), entry("2001:db8::2")], NOW)
        .unwrap();
    fw.unban(&crate::addr::parse_net("192.0.2.1").unwrap())
        .unwrap();
    assert_eq!(
        log_lines(&log),
        [
            "START",
            "CMD add ampere-v4 192.0.2.1/32 timeout 0 -exist",
            "CMD add ampere-v4 192.0.2.2/32 timeout 0 -exist",
            "CMD add ampere-v6 2001:db8::2/128 timeout 0 -exist",
            "CMD del ampere-v4 192.0.2.1/32 -exist",
        ]
    );
    // An error of one command is that command's error; the shell stays.
    let mut next = entry("192.0.2.3");
    next.expires = Some(NOW + 7);
    let err = fw
        .apply("add ampere-v4 bad\n")
        .expect_err("ipset reported an error");
    assert!(err.msg.contains("Syntax error: add ampere-v4 bad"), "{err}");
    fw.ban(&next, NOW).unwrap();
    let lines = log_lines(&log);
    assert_eq!(
        lines.last().unwrap(),
        "CMD add ampere-v4 192.0.2.3/32 timeout 7 -exist"
    );
    assert_eq!(lines.iter().filter(|l| *l == "START").count(), 1);
}

#[test]
fn a_dead_shell_falls_back_to_one_exec_then_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, log) = fake(dir.path());
    fw.ban(&entry("192.0.2.1"), NOW).unwrap();
    // The shell exits: this batch goes through `ipset restore`, and is not lost.
    fw.apply("die\nadd ampere-v4 192.0.2.9/32 timeout 0 -exist\n")
        .unwrap();
    fw.ban(&entry("192.0.2.2"), NOW).unwrap();
    assert_eq!(
        log_lines(&log),
        [
            "START",
            "CMD add ampere-v4 192.0.2.1/32 timeout 0 -exist",
            "RESTORE die",
            "RESTORE add ampere-v4 192.0.2.9/32 timeout 0 -exist",
            "START",
            "CMD add ampere-v4 192.0.2.2/32 timeout 0 -exist",
        ]
    );
}

#[test]
fn a_big_batch_goes_to_ipset_restore_not_through_the_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (fw, log) = fake(dir.path());
    let many: Vec<Entry> = (0..600)
        .map(|i| entry(&format!("10.0.{}.{}", i / 256, i % 256)))
        .collect();
    fw.ban_many(&many, NOW).unwrap();
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 600);
    assert!(lines
        .iter()
        .all(|l| l.starts_with("RESTORE add ampere-v4 10.0.")));
}

#[test]
fn the_audit_reads_members_and_definition_from_one_save() {
    let dir = tempfile::tempdir().unwrap();
    let (ipset, _) = fake(dir.path());
    let max = ipset.maxelem;
    let ours = format!(
        "create ampere-v4 hash:net family inet hashsize 1024 maxelem {max} timeout 0 bucketsize 12 initval 0x5e5419e2\nadd ampere-v4 192.0.2.1 timeout 0\nadd ampere-v4 198.51.100.0/24 timeout 300\nadd other 203.0.113.9\n"
    );
    assert_eq!(ipset.saved_definition_fault(false, &ours), None);
    let mut nets = Vec::new();
    Ipset::saved_members("ampere-v4", &ours, &mut nets);
    assert_eq!(
        nets,
        vec![entry("192.0.2.1").net, entry("198.51.100.0/24").net]
    );
    // A set of the same name made by hand, the other family, or no create line at all.
    let by_hand = format!("create ampere-v4 hash:ip family inet hashsize 1024 maxelem {max}\n");
    let fault = ipset.saved_definition_fault(false, &by_hand).unwrap();
    assert!(fault.contains("is `hash:ip family inet"), "{fault}");
    assert!(ipset.saved_definition_fault(true, &ours).is_some());
    assert!(ipset.saved_definition_fault(false, "").is_some());
    // Without timeouts, or another maxelem: not Ampere's set either.
    let no_timeout = ours.replace(" timeout 0 bucketsize", " bucketsize");
    assert!(ipset.saved_definition_fault(false, &no_timeout).is_some());
    let smaller = ours.replace(&format!("maxelem {max}"), "maxelem 1024");
    assert!(ipset.saved_definition_fault(false, &smaller).is_some());
}
