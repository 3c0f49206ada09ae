//! The test AMI server: replays the real captures over TCP with their real chunking and
//! timing, and synthetic security events shaped like them.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{fixture, fixture_dir};

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
    /// Fed events an older connection took after its client went away, for the newest.
    carried: Vec<u8>,
    /// Connections whose plan was played to the end.
    pub finished: usize,
    pub paced: Option<PacedReport>,
    /// What the server answers to an action (by its `Action:` name, case-insensitive):
    /// bytes with `{ACTIONID}` replaced by the action's ActionID. Ping is always answered.
    pub answers: Vec<(String, Vec<u8>)>,
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

/// Answers the complete actions in `acc` (Ping, and those the test gave answers for),
/// draining them; false when the client went away.
fn answer_actions(
    s: &mut TcpStream,
    acc: &mut Vec<u8>,
    log: &Arc<Mutex<ServerLog>>,
    pings: bool,
) -> bool {
    while let Some(end) = find(acc, b"\r\n\r\n") {
        let action = String::from_utf8_lossy(&acc[..end]).into_owned();
        acc.drain(..end + 4);
        let id = action_id(&action).unwrap_or_default();
        let name = action
            .lines()
            .find_map(|l| l.strip_prefix("Action: "))
            .unwrap_or("")
            .trim()
            .to_string();
        let reply = if name.eq_ignore_ascii_case("Ping") {
            if !pings {
                continue;
            }
            format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n")
                .into_bytes()
        } else {
            let l = log.lock().unwrap();
            match l
                .answers
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(&name))
            {
                Some((_, t)) => String::from_utf8_lossy(t)
                    .replace("{ACTIONID}", &id)
                    .into_bytes(),
                None => continue,
            }
        };
        if s.write_all(&reply).is_err() {
            return false;
        }
    }
    true
}

/// Answers Pings and the actions the test gave answers for (and notes what arrives) until
/// the client goes away or `stop` is set.
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
                if !answer_actions(s, &mut acc, log, answer) {
                    return;
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
            let mut acc = Vec::new();
            loop {
                if *stop.lock().unwrap() {
                    return;
                }
                let mut batch = Vec::new();
                let gone = {
                    let rx = rx.lock().unwrap();
                    // What an older connection took and could not write goes first.
                    batch.append(&mut log.lock().unwrap().carried);
                    let gone = match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(bytes) => {
                            batch.extend_from_slice(&bytes);
                            false
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => false,
                        Err(mpsc::RecvTimeoutError::Disconnected) => true,
                    };
                    // Everything already queued goes out in one write.
                    while let Ok(bytes) = rx.try_recv() {
                        batch.extend_from_slice(&bytes);
                    }
                    // A newer connection means this client went away (a restart) and this
                    // thread has not read its end yet. Written here, the events were lost
                    // in the dead socket (on a loaded machine the property test's attack
                    // after a restart was never seen): the newest connection writes them.
                    let mut l = log.lock().unwrap();
                    if l.received.len() > idx + 1 {
                        l.carried.append(&mut batch);
                        return;
                    }
                    gone
                };
                if !batch.is_empty() && s.write_all(&batch).is_err() {
                    return;
                }
                if gone {
                    break;
                }
                // Notice a client that went away (killed) without blocking the feed; answer
                // what it asks.
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        log.lock().unwrap().received[idx].extend_from_slice(&buf[..n]);
                        acc.extend_from_slice(&buf[..n]);
                        if !answer_actions(&mut s, &mut acc, log, true) {
                            return;
                        }
                    }
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
            } else {
                end_gracefully(&mut s);
            }
        }
    }
    log.lock().unwrap().finished += 1;
}

/// Ends a connection as Asterisk does at EOF: a FIN after the last byte, never a reset. A
/// socket closed with the client's actions unread (Ampere asks who is registered at each
/// login) sends a reset instead, and the client's kernel may drop the end of the stream
/// that it has not read yet.
fn end_gracefully(s: &mut TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
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

    /// From now on, `action` is answered with `reply` (`{ACTIONID}` replaced).
    pub fn answer(&self, action: &str, reply: &[u8]) {
        self.log
            .lock()
            .unwrap()
            .answers
            .push((action.to_string(), reply.to_vec()));
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

/// The answer a capture holds to the action it sent with ActionID `id` (the response and
/// the events that carry that ActionID, or that follow it up to the list's end), with the
/// ActionID made `{ACTIONID}`: for `AmiServer::answer`.
pub fn capture_answer(file: &str, id: &str) -> Vec<u8> {
    let data = String::from_utf8(fixture(file)).expect("captures are ASCII");
    let tag = format!("ActionID: {id}\r\n");
    let mut out = String::new();
    let mut inside = false;
    for block in data.split_inclusive("\r\n\r\n") {
        let ours = block.contains(&tag);
        if block.starts_with("Response: ") {
            inside = ours;
        }
        // IAXpeers' PeerEntry events carry no ActionID: they belong to the list they are in.
        if inside || ours {
            out.push_str(&block.replace(&tag, "ActionID: {ACTIONID}\r\n"));
            if block.contains("EventList: Complete") {
                inside = false;
            }
        }
    }
    assert!(!out.is_empty(), "{file} has no answer to ActionID {id}");
    out.into_bytes()
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
