//! A recorder standing in for the firewall tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One execution of a firewall command as the recorder saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub cmd: String,
    pub args: Vec<String>,
    pub stdin: String,
}

/// Shell scripts named iptables, ip6tables, iptables-restore and ip6tables-restore that log
/// every argument on its own line (and stdin for the restore commands) and succeed, unless
/// a file `fail-<name>` exists in the directory; `-S INPUT` lists a jump into the chain.
pub struct Recorder {
    pub dir: PathBuf,
    log: PathBuf,
}

pub const TOOLS: [&str; 4] = [
    "iptables",
    "ip6tables",
    "iptables-restore",
    "ip6tables-restore",
];

impl Recorder {
    pub fn new(dir: &Path) -> Recorder {
        let dir = dir.join("bin");
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls.log");
        let script = format!(
            r#"#!/bin/sh
name=$(basename "$0")
{{
  echo "CALL $name"
  for a in "$@"; do echo "ARG $a"; done
  case "$name" in *-restore) while IFS= read -r l; do echo "IN $l"; done ;; esac
  echo "END"
}} >> "{log}"
[ -e "{dir}/slow-$name" ] && sleep "$(cat "{dir}/slow-$name")"
[ -e "{dir}/fail-$name" ] && {{ echo "$name: simulated failure" >&2; exit 1; }}
# INPUT leads into the chain, as README step 2 sets it up.
[ "$2 $3" = "-S INPUT" ] && echo "-A INPUT -p udp -m multiport --dports 5060,4569 -j ampere"
exit 0
"#,
            log = log.display(),
            dir = dir.display()
        );
        for t in TOOLS {
            let p = dir.join(t);
            let _lock = super::exec_lock();
            fs::write(&p, &script).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Recorder { dir, log }
    }

    pub fn config_lines(&self) -> String {
        TOOLS
            .iter()
            .map(|t| format!("{} = {}\n", t.replace('-', "_"), self.dir.join(t).display()))
            .collect()
    }

    pub fn fail(&self, tool: &str, on: bool) {
        let p = self.dir.join(format!("fail-{tool}"));
        if on {
            fs::write(p, "").unwrap();
        } else {
            let _ = fs::remove_file(p);
        }
    }

    /// Makes `tool` take `secs` seconds (after it logged its call), as a tool stuck on a
    /// lock would.
    pub fn slow(&self, tool: &str, secs: u32) {
        fs::write(self.dir.join(format!("slow-{tool}")), secs.to_string()).unwrap();
    }

    pub fn calls(&self) -> Vec<Call> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = Vec::new();
        let mut cur: Option<Call> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("CALL ") {
                cur = Some(Call {
                    cmd: name.to_string(),
                    args: Vec::new(),
                    stdin: String::new(),
                });
            } else if let Some(a) = line.strip_prefix("ARG ") {
                cur.as_mut().unwrap().args.push(a.to_string());
            } else if let Some(l) = line.strip_prefix("IN ") {
                let c = cur.as_mut().unwrap();
                c.stdin.push_str(l);
                c.stdin.push('\n');
            } else if line == "END" {
                out.push(cur.take().unwrap());
            }
        }
        out
    }

    /// What the chain holds at the end, as `(tool, "-s" value)`: every `-I` (call or
    /// restore line) less every `-D` after it.
    pub fn held(&self) -> Vec<(String, String)> {
        let mut held: Vec<(String, String)> = Vec::new();
        let mut apply = |tool: &str, op: &str, net: &str| match op {
            "-I" => held.push((tool.to_string(), net.to_string())),
            "-D" => held.retain(|(t, n)| !(t == tool && n == net)),
            _ => {}
        };
        for c in self.calls() {
            match c.args.get(1).map(String::as_str) {
                Some(op @ ("-I" | "-D")) if c.args.len() == 7 => apply(&c.cmd, op, &c.args[4]),
                _ => {
                    if let Some(tool) = c.cmd.strip_suffix("-restore") {
                        for l in c.stdin.lines() {
                            let f: Vec<&str> = l.split(' ').collect();
                            if f.len() == 6 && f[2] == "-s" {
                                apply(tool, f[0], f[3]);
                            }
                        }
                    }
                }
            }
        }
        held
    }

    /// Banned addresses in order, as `(tool, "-s" value)`: from `-I` calls, and from the
    /// `-I` lines of restore batches (a burst of bans in one read).
    pub fn bans(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in self.calls() {
            if c.args.get(1).map(String::as_str) == Some("-I") {
                assert_eq!(c.args.len(), 7, "{c:?}");
                assert_eq!(c.args[0], "-w");
                assert_eq!(c.args[3], "-s");
                assert_eq!(c.args[5], "-j");
                out.push((c.cmd.clone(), c.args[4].clone()));
            } else if let Some(tool) = c.cmd.strip_suffix("-restore") {
                for l in c.stdin.lines().filter(|l| l.starts_with("-I ")) {
                    let f: Vec<&str> = l.split(' ').collect();
                    assert_eq!(f.len(), 6, "{c:?}");
                    assert_eq!((f[2], f[4]), ("-s", "-j"), "{c:?}");
                    out.push((tool.to_string(), f[3].to_string()));
                }
            }
        }
        out
    }
}
