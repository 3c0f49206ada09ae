//! Ampere under test: a temp dir with a config and a recorder, the daemon as a child
//! process, and the admin commands.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{ampere, Recorder};

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub rec: Recorder,
    pub cfg: PathBuf,
    pub db: PathBuf,
}

impl Setup {
    /// A temp dir with a recorder and a config pointing at `ami` plus `extra` lines.
    pub fn new(ami: Option<SocketAddr>, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new(dir.path());
        let db = dir.path().join("ampere.db");
        let cfg = dir.path().join("ampere.cfg");
        // Each daemon its own control socket: tests run side by side.
        let mut text = format!(
            "# written by the test\npass = 123\ndb = {}\nsocket = {}\n{}",
            db.display(),
            dir.path().join("ampere.sock").display(),
            rec.config_lines()
        );
        if let Some(a) = ami {
            text.push_str(&format!("host = {}\nport = {}\n", a.ip(), a.port()));
        }
        text.push_str(
            "ping_interval = 5\nping_timeout = 5\nreconnect_min = 1\nreconnect_max = 2\n",
        );
        // The guard for blind moments adds rules of its own to the chain; the tests that are
        // about it turn it on, the others count only ban rules.
        text.push_str("blind_guard = off\n");
        // Subnet escalation would fold the attackers of one /24 that many tests ban into
        // one entry; the tests that are about it turn it on.
        text.push_str("subnet_after = 0\n");
        text.push_str(extra);
        fs::write(&cfg, text).unwrap();
        Setup { dir, rec, cfg, db }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("ampere.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ampere.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn spawn(&self) -> Daemon {
        self.spawn_in(ampere())
    }

    /// The daemon started by `cmd` (the binary, or a wrapper that execs it in place so that
    /// the pid is the daemon's).
    pub fn spawn_in(&self, mut cmd: Command) -> Daemon {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        cmd.arg("-c")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = {
            let _lock = super::exec_lock();
            cmd.spawn().unwrap()
        };
        Daemon { child: Some(child) }
    }

    /// One value of the running daemon's `status keys` (None: no daemon, or no such key).
    pub fn status_key(&self, key: &str) -> Option<u64> {
        let (_, keys, _) = self.run(&["status", "keys"], "");
        keys.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
    }

    /// Addresses the database holds as active bans.
    pub fn stored(&self) -> Vec<String> {
        stored_in(&self.db)
    }

    /// Runs the binary with `args`, stdin from `input`; returns (status, stdout, stderr).
    pub fn run(&self, args: &[&str], input: &str) -> (i32, String, String) {
        self.run_in(ampere(), args, input)
    }

    /// `run` through `cmd`, as `spawn_in`.
    pub fn run_in(&self, mut cmd: Command, args: &[&str], input: &str) -> (i32, String, String) {
        cmd.arg("-c")
            .arg(&self.cfg)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = {
            let _lock = super::exec_lock();
            cmd.spawn().unwrap()
        };
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A running `ampere`; killed if still running when dropped (a failing test cleans up too).
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(self) -> i32 {
        self.stop_timed().0
    }

    /// SIGTERM and wait; returns the exit code and how long the process took to end.
    pub fn stop_timed(mut self) -> (i32, Duration) {
        self.signal("TERM");
        let sent = Instant::now();
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), sent.elapsed());
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("ampere did not stop within 10 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident set (VmHWM) in KiB, from /proc/PID/status.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resident anonymous memory (heap, stacks; not the program's text) in KiB.
    pub fn anon_rss_kib(&self) -> u64 {
        self.status_kib("RssAnon:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    /// CPU time (user + system) in clock ticks, from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // fields 14 and 15 of stat(5), counted from the state field (3) onwards
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Addresses the database at `db` holds as active bans (opened afresh: what the next start
/// would read), sorted.
pub fn stored_in(db: &Path) -> Vec<String> {
    let mut v: Vec<String> = ampere::store::Store::open(db)
        .unwrap()
        .active()
        .unwrap()
        .iter()
        .map(|b| ampere::addr::net_text(&b.net))
        .collect();
    v.sort();
    v
}
