//! What runs beside the daemon in the latency benchmark's loaded rounds: an admin importing
//! all along, or hostile control-socket clients.

use std::collections::VecDeque;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::common::ampere;

/// A thread that works until told to stop, then hands back what it counted; stopped and
/// joined when dropped too (a failing bench cleans up).
pub struct Background<T: Send + 'static> {
    stop: Arc<AtomicBool>,
    work: Option<thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Background<T> {
    fn start(work: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> Background<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Background {
            stop,
            work: Some(thread::spawn(move || work(&flag))),
        }
    }

    /// Stops after the round under way; what it counted.
    pub fn finish(mut self) -> T {
        self.stop.store(true, Ordering::SeqCst);
        self.work.take().unwrap().join().unwrap()
    }
}

impl<T: Send + 'static> Drop for Background<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.work.take() {
            let _ = w.join();
        }
    }
}

/// An admin's `ampere -a` of `m` addresses (192.168.0.0/16 and up, never an attacker's)
/// and then `-d` of them, over and over; the wall time of each run.
pub fn importer(cfg: &Path, m: usize) -> Background<Vec<(&'static str, f64)>> {
    let list: String = (0..m)
        .map(|i| format!("{}\n", Ipv4Addr::from(0xc0a8_0000u32 + i as u32)))
        .collect();
    let cfg = cfg.to_path_buf();
    Background::start(move |stop| {
        let mut runs = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            for op in ["-a", "-d"] {
                let t = Instant::now();
                assert!(
                    piped(&cfg, op, &list).status.success(),
                    "ampere {op} failed"
                );
                runs.push((op, t.elapsed().as_secs_f64() * 1000.0));
            }
        }
        runs
    })
}

/// Hostile clients of the control socket, kept attached all along: each 200 ms a new one
/// that connects and says nothing, one that asks for `status` and never reads the answer,
/// and one that sends without end and never a newline. Each is dropped after 5 s (the
/// daemon gives a client 3 s and keeps 8, the newest). Counts the trios.
pub fn hostiles(socket: PathBuf) -> Background<usize> {
    Background::start(move |stop| {
        let junk = vec![b'x'; 16 * 1024];
        let mut held: VecDeque<(Instant, bool, UnixStream)> = VecDeque::new();
        let mut trios = 0;
        while !stop.load(Ordering::SeqCst) {
            for kind in 0..3 {
                let Ok(mut s) = UnixStream::connect(&socket) else {
                    continue;
                };
                s.set_nonblocking(true).unwrap();
                if kind == 1 {
                    let _ = s.write(b"status\n");
                }
                held.push_back((Instant::now(), kind == 2, s));
            }
            trios += 1;
            for _ in 0..20 {
                for (_, flooding, s) in held.iter_mut().filter(|h| h.1) {
                    if s.write(&junk).is_err() {
                        *flooding = false;
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
            while held
                .front()
                .is_some_and(|h| h.0.elapsed() > Duration::from_secs(5))
            {
                held.pop_front();
            }
        }
        trios
    })
}

/// Asterisk's log growing by `per_sec` bytes a second all along (lines of other modules,
/// and chan_iax2 lines that are no guess), into `path`, which the daemon follows. Returns
/// the bytes written.
pub fn log_flood(path: &std::path::Path, per_sec: usize) -> Background<u64> {
    use std::io::Write;
    let path = path.to_path_buf();
    Background::start(move |stop| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        let lines = "[2026-12-06 20:15:32] VERBOSE[16974][C-00000a1f] pbx.c: Executing [600@internal:1] Answer(\"SIP/1001-00000a1f\", \"\") in new stack\n\
                     [2026-12-06 20:15:32] WARNING[16980] chan_iax2.c: Silently dropping frame without existent call number: 18829\n";
        let chunk = lines.repeat((per_sec / 100) / lines.len() + 1);
        let mut written = 0u64;
        let start = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            // A hundredth of a second's worth each 10 ms.
            f.write_all(chunk.as_bytes()).unwrap();
            written += chunk.len() as u64;
            let due = start + Duration::from_secs_f64(written as f64 / per_sec as f64);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                thread::sleep(wait);
            }
        }
        written
    })
}

/// `ampere -a` of `n` addresses from 100.64.0.0 on (no daemon runs yet): the bans in place
/// of the rounds that measure a big set.
pub fn fill(cfg: &Path, n: usize) {
    let list: String = (0..n)
        .map(|i| format!("{}\n", Ipv4Addr::from(0x6440_0000u32 + i as u32)))
        .collect();
    let out = piped(cfg, "-a", &list);
    assert!(
        out.status.success(),
        "ampere -a of {n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ampere -c CFG OP` with `list` on its stdin; what it did.
fn piped(cfg: &Path, op: &str, list: &str) -> std::process::Output {
    let mut child = ampere()
        .arg("-c")
        .arg(cfg)
        .arg(op)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
