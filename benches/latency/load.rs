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

/// An admin's `ampere -a` of `m` addresses (192.168.0.0/16 and up, never an attacker's)
/// and then `-d` of them, over and over until dropped. Each run's wall time is kept.
pub struct Importer {
    stop: Arc<AtomicBool>,
    runs: Option<thread::JoinHandle<Vec<(&'static str, f64)>>>,
}

impl Importer {
    pub fn start(cfg: &Path, m: usize) -> Importer {
        let list: String = (0..m)
            .map(|i| format!("{}\n", Ipv4Addr::from(0xc0a8_0000u32 + i as u32)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (cfg, flag) = (cfg.to_path_buf(), stop.clone());
        let runs = thread::spawn(move || {
            let mut runs = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                for op in ["-a", "-d"] {
                    let t = Instant::now();
                    let mut child = ampere()
                        .arg("-c")
                        .arg(&cfg)
                        .arg(op)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(list.as_bytes())
                        .unwrap();
                    assert!(child.wait().unwrap().success(), "ampere {op} failed");
                    runs.push((op, t.elapsed().as_secs_f64() * 1000.0));
                }
            }
            runs
        });
        Importer {
            stop,
            runs: Some(runs),
        }
    }

    /// Stops after the running import; the wall time of each `-a` and `-d`.
    pub fn finish(mut self) -> Vec<(&'static str, f64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.runs.take().unwrap().join().unwrap()
    }
}

impl Drop for Importer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.runs.take() {
            let _ = r.join();
        }
    }
}

/// Hostile clients of the control socket, kept attached all along: each 200 ms a new one
/// that connects and says nothing, one that asks for `status` and never reads the answer,
/// and one that sends without end and never a newline. Each is dropped after 5 s (the
/// daemon gives a client 3 s and keeps 8, the newest).
pub struct Hostiles {
    stop: Arc<AtomicBool>,
    runs: Option<thread::JoinHandle<usize>>,
}

impl Hostiles {
    pub fn start(socket: PathBuf) -> Hostiles {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let runs = thread::spawn(move || {
            let junk = vec![b'x'; 16 * 1024];
            let mut held: VecDeque<(Instant, bool, UnixStream)> = VecDeque::new();
            let mut trios = 0;
            while !flag.load(Ordering::SeqCst) {
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
        });
        Hostiles {
            stop,
            runs: Some(runs),
        }
    }

    /// Stops them; how many trios were sent.
    pub fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.runs.take().unwrap().join().unwrap()
    }
}

impl Drop for Hostiles {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.runs.take() {
            let _ = r.join();
        }
    }
}
