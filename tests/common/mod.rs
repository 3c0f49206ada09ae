//! Shared test harness: a recorder standing in for iptables, a test AMI server that replays
//! the real captures over TCP, and a running `ampere` that is stopped when dropped.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary cargo built for these tests (examples, which only borrow the AMI server, get
/// no such variable).
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_ampere") {
    Some(b) => b,
    None => "ampere",
};

/// The emulator prefix under which `BIN` runs when the tests run for another architecture
/// (`cross/build.sh TRIPLE test` sets it to the target's qemu-user), else empty.
pub fn runner() -> Vec<String> {
    std::env::var("AMPERE_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The binary under test: this build's, unless `AMPERE_TEST_BIN` names another (the
/// benchmarks measure the static musl builds).
pub fn bin() -> String {
    std::env::var("AMPERE_TEST_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// A command that runs the `ampere` binary under test.
pub fn ampere() -> Command {
    let r = runner();
    match r.split_first() {
        Some((emu, args)) => {
            let mut c = Command::new(emu);
            c.args(args).arg(bin());
            c
        }
        None => Command::new(bin()),
    }
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ami")
}

pub fn fixture(name: &str) -> Vec<u8> {
    fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Waits until `f` is true or panics with `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {secs}s waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Firewall recorder

/// One execution of a firewall command as the recorder saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub cmd: String,
    pub args: Vec<String>,
    pub stdin: String,
}

/// Shell scripts named iptables, ip6tables, iptables-restore and ip6tables-restore that log
/// every argument on its own line (and stdin for the restore commands) and succeed, unless
/// a file `fail-<name>` exists in the directory.
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
[ -e "{dir}/fail-$name" ] && {{ echo "$name: simulated failure" >&2; exit 1; }}
exit 0
"#,
            log = log.display(),
            dir = dir.display()
        );
        for t in TOOLS {
            let p = dir.join(t);
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

// ---------------------------------------------------------------------------------------
// Test AMI server

/// What the server does with one accepted connection.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Replay a capture: banner, wait for the Login, then the rest with the capture's
    /// chunking; gaps are scaled by `speed` (0 = no waiting) and capped at 200 ms. Then EOF.
    Replay { file: String, speed: f64 },
    /// Like Replay but hold the connection open afterwards without ever answering.
    ReplayThenSilent { file: String },
    /// Replay only the first `bytes` bytes of the capture, then close.
    Truncated { file: String, bytes: usize },
    /// Banner, successful login, then arbitrary bytes, then hold open (answering Pings).
    Custom(Vec<u8>),
    /// Banner, then (after the Login) these bytes verbatim, `{ACTIONID}` replaced by the
    /// Login's ActionID; then hold open answering Pings. The test writes the login answer.
    Raw(Vec<u8>),
    /// Banner, then answer the Login with Asterisk's failure and close.
    RejectLogin,
    /// Accept and close at once (a reset during Asterisk's restart).
    Reset,
    /// Banner, successful login, then whatever the test sends through the channel, as it
    /// sends it (answering Pings meanwhile). Connections share the channel.
    Feed(Arc<Mutex<mpsc::Receiver<Vec<u8>>>>),
    /// Banner, successful login, then `events` at `per_sec`, enforcing Asterisk's AMI
    /// `writetimeout` (100 ms by default): a write that cannot complete within `write_timeout`
    /// drops the client, as Asterisk does with a slow consumer. Then hold open.
    Paced {
        events: Arc<Vec<Vec<u8>>>,
        per_sec: u64,
        write_timeout: Duration,
    },
}

/// How a `Plan::Paced` connection went.
#[derive(Clone, Debug, Default)]
pub struct PacedReport {
    pub sent: usize,
    /// Why the server dropped the client (a write timed out), if it did.
    pub dropped: Option<String>,
    /// The longest time one write waited for the client.
    pub max_stall: Duration,
    /// From the first event to the last one written.
    pub elapsed: Duration,
}

#[derive(Default, Debug)]
pub struct ServerLog {
    /// Bytes received from the client, per connection.
    pub received: Vec<Vec<u8>>,
    pub accepted: usize,
    /// Connections whose plan was played to the end.
    pub finished: usize,
    pub paced: Option<PacedReport>,
}

pub struct AmiServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<ServerLog>>,
    stop: Arc<Mutex<bool>>,
    thread: Option<JoinHandle<()>>,
}

struct Chunk {
    off: usize,
    len: usize,
    t: f64,
}

fn json_num(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\": ");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// The `rx` chunks of a capture's timeline (real chunking and timing), parsed once per file:
/// `AmiServer::start_on` parses them before anything connects, so that the banner and the
/// login answer are never late (under qemu the parse takes seconds).
fn timeline(file: &str) -> Arc<Vec<Chunk>> {
    static CACHE: std::sync::OnceLock<Mutex<std::collections::HashMap<String, Arc<Vec<Chunk>>>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(file) {
        return c.clone();
    }
    let path = fixture_dir().join(format!("{file}.timeline"));
    let text = fs::read_to_string(&path).unwrap_or_default();
    let mut out: Vec<Chunk> = text
        .lines()
        .filter(|l| l.contains("\"ev\": \"rx\""))
        // A timeline also lists the reconnections (conn 2, 3: the `.reconnectN` files, with
        // offsets into those); replaying their chunks here would resend bytes of this file
        // after its end, racing with a client that already hung up after `Shutdown`.
        .filter(|l| json_num(l, "conn") == Some(1.0))
        .filter_map(|l| {
            Some(Chunk {
                off: json_num(l, "off")? as usize,
                len: json_num(l, "len")? as usize,
                t: json_num(l, "t")?,
            })
        })
        .collect();
    if out.is_empty() {
        let len = fixture(file).len();
        out.push(Chunk {
            off: 0,
            len,
            t: 0.0,
        });
    }
    let out = Arc::new(out);
    cache.lock().unwrap().insert(file.to_string(), out.clone());
    out
}

/// Reads from the client until a complete action (blank line) arrived; returns it.
fn read_action(s: &mut TcpStream, log: &Arc<Mutex<ServerLog>>, idx: usize) -> Option<String> {
    let mut acc = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if acc.windows(4).any(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&acc).into_owned();
            return Some(text);
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        acc.extend_from_slice(&buf[..n]);
        log.lock().unwrap().received[idx].extend_from_slice(&buf[..n]);
    }
}

fn action_id(action: &str) -> Option<String> {
    action
        .lines()
        .find_map(|l| l.strip_prefix("ActionID: "))
        .map(|s| s.trim().to_string())
}

/// The capture after its banner line, with `ActionID` added to the login answer as Asterisk
/// echoes it. `ins`/`extra`: where (relative to the banner's end) and how many bytes were
/// added, to map the timeline's offsets.
struct Patched {
    banner_end: usize,
    data: Vec<u8>,
    ins: usize,
    extra: usize,
}

impl Patched {
    /// Index into `data` of capture offset `off` (at or past the banner).
    fn map(&self, off: usize) -> usize {
        let r = off - self.banner_end;
        if r > self.ins {
            r + self.extra
        } else {
            r
        }
    }
}

/// Sends the banner (the capture's first line) and waits for the Login.
fn login_exchange(
    s: &mut TcpStream,
    data: &[u8],
    log: &Arc<Mutex<ServerLog>>,
    idx: usize,
) -> Option<Patched> {
    let banner_end = data.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    s.write_all(&data[..banner_end]).ok()?;
    let login = read_action(s, log, idx)?;
    let rest = &data[banner_end..];
    let id = action_id(&login).unwrap_or_default();
    let mut p = Patched {
        banner_end,
        data: Vec::new(),
        ins: 0,
        extra: 0,
    };
    if let Some(pos) = find(rest, b"\r\n").filter(|_| rest.starts_with(b"Response: ")) {
        let add = format!("ActionID: {id}\r\n");
        p.ins = pos + 2;
        p.extra = add.len();
        p.data.extend_from_slice(&rest[..p.ins]);
        p.data.extend_from_slice(add.as_bytes());
        p.data.extend_from_slice(&rest[p.ins..]);
    } else {
        p.data.extend_from_slice(rest);
    }
    Some(p)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Answers Pings (and notes what arrives) until the client goes away or `stop` is set.
fn serve_pings(
    s: &mut TcpStream,
    log: &Arc<Mutex<ServerLog>>,
    idx: usize,
    stop: &Arc<Mutex<bool>>,
    answer: bool,
) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut acc = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if *stop.lock().unwrap() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                acc.extend_from_slice(&buf[..n]);
                log.lock().unwrap().received[idx].extend_from_slice(&buf[..n]);
                while let Some(end) = find(&acc, b"\r\n\r\n") {
                    let action = String::from_utf8_lossy(&acc[..end]).into_owned();
                    acc.drain(..end + 4);
                    if answer && action.contains("Action: Ping") {
                        let id = action_id(&action).unwrap_or_default();
                        let pong = format!(
                            "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n"
                        );
                        if s.write_all(pong.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

const LOGIN_OK: &[u8] =
    b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n";

fn serve(
    mut s: TcpStream,
    plan: &Plan,
    log: &Arc<Mutex<ServerLog>>,
    idx: usize,
    stop: &Arc<Mutex<bool>>,
) {
    let _ = s.set_nodelay(true);
    match plan {
        Plan::Reset => {}
        Plan::RejectLogin => {
            let _ = s.write_all(b"Asterisk Call Manager/11.0.0\r\n");
            if let Some(login) = read_action(&mut s, log, idx) {
                // Asterisk waits a second before answering a failed login.
                thread::sleep(Duration::from_millis(300));
                let id = action_id(&login).unwrap_or_default();
                let _ = s.write_all(
                    format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n").as_bytes(),
                );
            }
        }
        Plan::Custom(bytes) => {
            let Some(p) = login_exchange(&mut s, LOGIN_OK, log, idx) else {
                return;
            };
            if s.write_all(&p.data).is_err() || s.write_all(bytes).is_err() {
                return;
            }
            serve_pings(&mut s, log, idx, stop, true);
        }
        Plan::Raw(bytes) => {
            let _ = s.write_all(b"Asterisk Call Manager/11.0.0\r\n");
            let Some(login) = read_action(&mut s, log, idx) else {
                return;
            };
            let id = action_id(&login).unwrap_or_default();
            let text = String::from_utf8_lossy(bytes).replace("{ACTIONID}", &id);
            if s.write_all(text.as_bytes()).is_err() {
                return;
            }
            serve_pings(&mut s, log, idx, stop, true);
        }
        Plan::Feed(rx) => {
            let Some(p) = login_exchange(&mut s, LOGIN_OK, log, idx) else {
                return;
            };
            if s.write_all(&p.data).is_err() {
                return;
            }
            s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut buf = [0u8; 1024];
            loop {
                if *stop.lock().unwrap() {
                    return;
                }
                let mut batch = Vec::new();
                {
                    let rx = rx.lock().unwrap();
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(bytes) => batch.extend_from_slice(&bytes),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    // Everything already queued goes out in one write.
                    while let Ok(bytes) = rx.try_recv() {
                        batch.extend_from_slice(&bytes);
                    }
                }
                if !batch.is_empty() && s.write_all(&batch).is_err() {
                    return;
                }
                // Notice a client that went away (killed) without blocking the feed.
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => log.lock().unwrap().received[idx].extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            serve_pings(&mut s, log, idx, stop, true);
        }
        Plan::Paced {
            events,
            per_sec,
            write_timeout,
        } => {
            let Some(p) = login_exchange(&mut s, LOGIN_OK, log, idx) else {
                return;
            };
            if s.write_all(&p.data).is_err() {
                return;
            }
            let report = paced(&mut s, events, *per_sec, *write_timeout, stop);
            let dropped = report.dropped.is_some();
            log.lock().unwrap().paced = Some(report);
            if dropped {
                return;
            }
            serve_pings(&mut s, log, idx, stop, true);
        }
        Plan::Replay { file, .. }
        | Plan::ReplayThenSilent { file }
        | Plan::Truncated { file, .. } => {
            let data = fixture(file);
            let limit = match plan {
                Plan::Truncated { bytes, .. } => *bytes,
                _ => data.len(),
            };
            let speed = match plan {
                Plan::Replay { speed, .. } => *speed,
                _ => 0.0,
            };
            // Parsed before the banner goes out, so that the login answer is not delayed.
            let chunks = timeline(file);
            let Some(p) = login_exchange(&mut s, &data, log, idx) else {
                return;
            };
            let mut prev_t = None;
            for c in chunks.iter() {
                let (from, to) = (c.off.max(p.banner_end), (c.off + c.len).min(limit));
                if from >= to {
                    continue;
                }
                if let (Some(prev), true) = (prev_t, speed > 0.0) {
                    let gap: f64 = (c.t - prev) * speed;
                    thread::sleep(Duration::from_secs_f64(gap.clamp(0.0, 0.2)));
                }
                prev_t = Some(c.t);
                if s.write_all(&p.data[p.map(from)..p.map(to)]).is_err() {
                    return;
                }
            }
            if matches!(plan, Plan::ReplayThenSilent { .. }) {
                serve_pings(&mut s, log, idx, stop, false);
            }
        }
    }
    log.lock().unwrap().finished += 1;
}

/// Writes `events` at `per_sec`, each turn's due events in one write that must complete
/// within `write_timeout` (stricter than Asterisk, whose limit is per message).
fn paced(
    s: &mut TcpStream,
    events: &[Vec<u8>],
    per_sec: u64,
    write_timeout: Duration,
    stop: &Arc<Mutex<bool>>,
) -> PacedReport {
    let mut r = PacedReport::default();
    let start = Instant::now();
    let mut batch = Vec::new();
    while r.sent < events.len() {
        if *stop.lock().unwrap() {
            break;
        }
        let due = ((start.elapsed().as_secs_f64() * per_sec as f64) as usize + 1).min(events.len());
        if due <= r.sent {
            let next = Duration::from_secs_f64(r.sent as f64 / per_sec as f64);
            thread::sleep(next.saturating_sub(start.elapsed()));
            continue;
        }
        batch.clear();
        for e in &events[r.sent..due] {
            batch.extend_from_slice(e);
        }
        let t = Instant::now();
        let deadline = t + write_timeout;
        let mut off = 0;
        while off < batch.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                r.dropped = Some(format!(
                    "event {}: the client read nothing for {write_timeout:?} (write timeout)",
                    r.sent
                ));
                return r;
            }
            s.set_write_timeout(Some(left)).unwrap();
            match s.write(&batch[off..]) {
                Ok(0) => {
                    r.dropped = Some("client closed".into());
                    return r;
                }
                Ok(n) => off += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    r.dropped = Some(format!("write: {e}"));
                    return r;
                }
            }
        }
        r.max_stall = r.max_stall.max(t.elapsed());
        r.sent = due;
    }
    r.elapsed = start.elapsed();
    s.set_write_timeout(None).unwrap();
    r
}

impl AmiServer {
    /// Serves `plans` in order, one per accepted connection; later connections are closed
    /// at once. `refuse_first` keeps the port closed for that long before listening.
    pub fn start(plans: Vec<Plan>) -> AmiServer {
        Self::start_on("127.0.0.1:0", plans, Duration::ZERO)
    }

    pub fn start_on(bind: &str, plans: Vec<Plan>, refuse_first: Duration) -> AmiServer {
        for p in &plans {
            if let Plan::Replay { file, .. }
            | Plan::ReplayThenSilent { file }
            | Plan::Truncated { file, .. } = p
            {
                timeline(file);
            }
        }
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let stop = Arc::new(Mutex::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let listener = if refuse_first.is_zero() {
            Some(listener)
        } else {
            drop(listener);
            None
        };
        let thread = thread::spawn(move || {
            let listener = listener.unwrap_or_else(|| {
                thread::sleep(refuse_first);
                TcpListener::bind(addr).unwrap()
            });
            listener.set_nonblocking(true).unwrap();
            let mut plans = plans.into_iter();
            let mut workers = Vec::new();
            loop {
                if *stop2.lock().unwrap() {
                    break;
                }
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let idx = {
                            let mut l = log2.lock().unwrap();
                            l.accepted += 1;
                            l.received.push(Vec::new());
                            l.received.len() - 1
                        };
                        match plans.next() {
                            Some(plan) => {
                                let (log3, stop3) = (log2.clone(), stop2.clone());
                                workers.push(thread::spawn(move || {
                                    serve(s, &plan, &log3, idx, &stop3)
                                }));
                            }
                            None => drop(s),
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        AmiServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepted(&self) -> usize {
        self.log.lock().unwrap().accepted
    }

    pub fn finished(&self) -> usize {
        self.log.lock().unwrap().finished
    }

    pub fn paced(&self) -> Option<PacedReport> {
        self.log.lock().unwrap().paced.clone()
    }

    pub fn received(&self, idx: usize) -> String {
        let l = self.log.lock().unwrap();
        String::from_utf8_lossy(l.received.get(idx).map_or(&[][..], |v| v)).into_owned()
    }
}

impl Drop for AmiServer {
    fn drop(&mut self) {
        *self.stop.lock().unwrap() = true;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Ampere under test

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
        let mut text = format!(
            "# written by the test\npass = 123\ndb = {}\n{}",
            db.display(),
            rec.config_lines()
        );
        if let Some(a) = ami {
            text.push_str(&format!("host = {}\nport = {}\n", a.ip(), a.port()));
        }
        text.push_str(
            "ping_interval = 5\nping_timeout = 5\nreconnect_min = 1\nreconnect_max = 2\n",
        );
        text.push_str(extra);
        fs::write(&cfg, text).unwrap();
        Setup { dir, rec, cfg, db }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ampere.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn spawn(&self) -> Daemon {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = ampere()
            .arg("-c")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child: Some(child) }
    }

    /// Addresses the database holds as active bans.
    pub fn stored(&self) -> Vec<String> {
        let s = ampere::store::Store::open(&self.db).unwrap();
        let mut v: Vec<String> = s.active().unwrap().into_iter().map(|b| b.addr).collect();
        v.sort();
        v
    }

    /// Runs the binary with `args`, stdin from `input`; returns (status, stdout, stderr).
    pub fn run(&self, args: &[&str], input: &str) -> (i32, String, String) {
        let mut child = ampere()
            .arg("-c")
            .arg(&self.cfg)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
    pub fn stop(mut self) -> i32 {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
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

/// The messages of a capture after its login answer, each ending in its blank line, with
/// every occurrence of each `(from, to)` address text replaced.
pub fn fixture_events(file: &str, rewrite: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let data = String::from_utf8(fixture(file)).expect("captures are ASCII");
    let mut blocks: Vec<String> = data.split_inclusive("\r\n\r\n").map(String::from).collect();
    // banner + login answer
    assert!(blocks[0].starts_with("Asterisk Call Manager/"));
    blocks.remove(0);
    blocks
        .into_iter()
        .map(|mut b| {
            for (from, to) in rewrite {
                b = b.replace(from, to);
            }
            b.into_bytes()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Synthetic security events, shaped like the captures' (pjsip-flood, pjsip-svmap)

/// A ChallengeResponseFailed (a wrong password: weight 1) from `addr`
/// (`IPV4/UDP/a.b.c.d/5060` form).
pub fn crf_event(i: u64, remote: &str) -> String {
    format!(
        "Event: ChallengeResponseFailed\r\nPrivilege: security,all\r\nEventTV: 2026-11-23T08:41:22.265+0000\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 1001\r\nSessionID: {i:x}@x\r\nLocalAddress: IPV4/UDP/192.0.2.2/5060\r\nRemoteAddress: {remote}\r\nChallenge: 1795423282/73198da745ac63355d1faa9cd788688f\r\nResponse: f8a2520f34d4c3f2c63f3885c7116a46\r\nExpectedResponse: \r\n\r\n"
    )
}

/// An InvalidAccountID (an extension scan: weight 5, so three of them ban with loyalty 3).
pub fn invalid_account_event(i: u64, remote: &str) -> String {
    format!(
        "Event: InvalidAccountID\r\nPrivilege: security,all\r\nEventTV: 2026-11-23T08:41:54.705+0000\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: {}\r\nSessionID: {i:x}\r\nLocalAddress: IPV4/UDP/192.0.2.2/5060\r\nRemoteAddress: {remote}\r\n\r\n",
        100 + i % 900
    )
}

/// The RemoteAddress of the `k`-th distinct source: IPv4 from 10.0.0.0/8, every fourth one
/// IPv6 from 2001:db8::/32 when `with_v6`.
pub fn remote(k: u64, with_v6: bool) -> String {
    if with_v6 && k % 4 == 3 {
        format!("IPV6/UDP/2001:db8:{:x}:{:x}::1/5060", k >> 16, k & 0xffff)
    } else {
        format!(
            "IPV4/UDP/10.{}.{}.{}/5060",
            (k >> 16) & 255,
            (k >> 8) & 255,
            k & 255
        )
    }
}

/// The CPU, as the benchmarks describe the machine.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: "))
        .unwrap_or("unknown CPU")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Network namespaces (tests/netns.rs, benches/latency.rs, benches/restore.rs)

/// Runs a command (no shell); whether it succeeded, and what it printed (stdout, stderr).
pub fn sh(cmd: &[&str]) -> (bool, String) {
    match Command::new(cmd[0]).args(&cmd[1..]).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {}: {e}", cmd[0])),
    }
}

pub fn must(cmd: &[&str]) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "`{}` failed: {out}", cmd.join(" "));
    out
}

/// Creates namespaces `a` and `b` joined by a veth pair (`dev_a` in `a`, `dev_b` in `b`),
/// both ends and loopback up, with these addresses (`addr/len`; IPv6 ones without duplicate
/// address detection, so that they work at once).
pub fn veth_pair(a: &str, b: &str, dev_a: &str, dev_b: &str, addrs_a: &[&str], addrs_b: &[&str]) {
    must(&["ip", "netns", "add", a]);
    must(&["ip", "netns", "add", b]);
    must(&[
        "ip", "link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b,
    ]);
    for (ns, dev, addrs) in [(a, dev_a, addrs_a), (b, dev_b, addrs_b)] {
        for addr in addrs {
            let mut cmd = vec!["ip", "-n", ns, "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                cmd.push("nodad");
            }
            must(&cmd);
        }
        must(&["ip", "-n", ns, "link", "set", dev, "up"]);
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
}
