//! The control socket: a Unix stream socket in the daemon's poll loop that answers one request
//! per connection and closes: a line (`status`, `status keys`, `why ADDR`), or `add`/`del`
//! and a list of networks up to the client's EOF. Everything a client
//! sends is hostile until parsed: the request is read into a fixed bound, every client has a
//! deadline, and there are never more than `MAX_CLIENTS`; a client that sends nothing, sends
//! megabytes or never reads its answer costs the loop one bounded read or write per wake-up
//! and is dropped at its deadline (or when a newer client needs its place). Only root and the daemon's own user are answered
//! (SO_PEERCRED), and the socket file is mode 0600.

pub mod client;
pub mod proto;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sys::{self, PollFd};
use crate::{debug, warn};
use proto::{Answer, Request};

/// Longest request line; a longer one is refused without being read further.
pub const MAX_REQUEST: usize = 512;
/// Longest request with a body (`add`/`del` and a list, one network per line, up to the
/// client's EOF). The CLI hands the daemon lists of at most `LIST_PART` networks and applies
/// longer ones itself.
pub const MAX_BODY: usize = 64 * 1024;
pub const LIST_PART: usize = 1_000;
/// Clients served at once; a newcomer beyond that takes the oldest one's place.
pub const MAX_CLIENTS: usize = 8;
/// How long a client has to send its request and read the answer.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(3);
/// Bytes read or written per client per wake-up.
const CHUNK: usize = 16 * 1024;
/// How long a daemon already at the socket has to answer before the socket counts as stale.
/// A running daemon answers within a turn of its loop; an orphaned child of a killed daemon
/// that still holds a copy of the listener (between its fork and its exec) never does.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

struct Client {
    stream: UnixStream,
    request: Vec<u8>,
    /// The answer once the request is complete, and how much of it went out.
    answer: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    /// Refused: too many clients, a foreign user, a request over the bound, a deadline.
    pub refused: u64,
}

/// Whether what listens at the other end of `s` answers a request: a running Ampere does
/// (an unknown request gets its one-line error), a process that only holds the listener
/// does not.
fn answers(mut s: UnixStream) -> bool {
    let bounded = s.set_read_timeout(Some(PROBE_TIMEOUT)).is_ok()
        && s.set_write_timeout(Some(PROBE_TIMEOUT)).is_ok();
    let mut byte = [0u8; 1];
    bounded && s.write_all(b"ping\n").is_ok() && s.read(&mut byte).is_ok_and(|n| n > 0)
}

impl Control {
    /// Binds `path` (mode 0600, its directory made 0755 if missing). A socket file left by a
    /// daemon that died is replaced; one that answers belongs to a running daemon, and that
    /// is an error: two daemons would fight over the firewall.
    pub fn bind(path: &Path) -> Result<Control, Error> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|e| Error::io(format_args!("cannot create {}", dir.display()), e))?;
            }
        }
        if std::fs::symlink_metadata(path).is_ok() {
            if let Ok(s) = UnixStream::connect(path) {
                if answers(s) {
                    return Err(Error::Running(shown.to_string()));
                }
                warn!(
                    "{shown}: something holds the socket but does not answer within {}s (a child of a daemon that was killed, before its exec): replaced",
                    PROBE_TIMEOUT.as_secs()
                );
            }
            std::fs::remove_file(path).map_err(|e| {
                Error::io(format_args!("cannot remove the stale socket {shown}"), e)
            })?;
        }
        // Made 0600 before anyone can connect: bind under a umask that leaves nothing else.
        let listener = with_umask(0o177, || UnixListener::bind(path))
            .map_err(|e| Error::io(format_args!("cannot listen on {shown}"), e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&shown, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&shown, e))?;
        Ok(Control {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            refused: 0,
        })
    }

    /// The listener and every client, each with what it waits for.
    pub fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        fds.push(PollFd {
            fd: self.listener.as_raw_fd(),
            events: sys::POLLIN,
            revents: 0,
        });
        for c in &self.clients {
            fds.push(PollFd {
                fd: c.stream.as_raw_fd(),
                events: if c.answer.is_some() {
                    sys::POLLOUT
                } else {
                    sys::POLLIN
                },
                revents: 0,
            });
        }
    }

    /// The earliest client deadline.
    pub fn next_timer(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Handles what `poll` reported for the fds `poll_fds` added (in that order); `answer`
    /// answers a complete request, decoded.
    pub fn ready(&mut self, fds: &[PollFd], answer: &mut dyn FnMut(Request) -> Answer) {
        let now = Instant::now();
        let mut done = vec![false; self.clients.len()];
        for (i, fd) in fds.iter().enumerate().skip(1).take(self.clients.len()) {
            if fd.revents != 0 {
                done[i - 1] = !self.serve(i - 1, answer);
            }
        }
        let mut i = 0;
        self.clients.retain(|c| {
            let keep = !done[i] && c.deadline > now;
            if !done[i] && c.deadline <= now {
                debug!("control: a client took longer than {CLIENT_DEADLINE:?}: closed");
            }
            i += 1;
            keep
        });
        if fds.first().is_some_and(|l| l.revents != 0) {
            self.accept(now);
        }
    }

    /// Drops clients past their deadline (the loop calls it on every turn).
    pub fn expire(&mut self, now: Instant) {
        let before = self.clients.len();
        self.clients.retain(|c| c.deadline > now);
        self.refused += (before - self.clients.len()) as u64;
    }

    fn accept(&mut self, now: Instant) {
        // A few per wake-up: a connect flood cannot keep the loop here.
        for _ in 0..MAX_CLIENTS {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("control: accept: {e}");
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                // The oldest goes, not the newcomer: clients that hold a place and say
                // nothing never lock the admin out.
                self.refused += 1;
                let oldest = (0..self.clients.len())
                    .min_by_key(|&i| self.clients[i].deadline)
                    .expect("the list is full");
                self.clients.remove(oldest);
            }
            match sys::peer_uid(stream.as_raw_fd()) {
                Ok(uid) if uid == 0 || uid == sys::euid() => {}
                Ok(uid) => {
                    self.refused += 1;
                    warn!("control: a client of user {uid} refused (only root may ask)");
                    continue;
                }
                Err(e) => {
                    self.refused += 1;
                    warn!("control: cannot tell the client's user: {e}");
                    continue;
                }
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(Client {
                stream,
                request: Vec::new(),
                answer: None,
                deadline: now + CLIENT_DEADLINE,
            });
        }
    }

    /// One bounded read or write for client `i`; false when it is finished with.
    fn serve(&mut self, i: usize, answer: &mut dyn FnMut(Request) -> Answer) -> bool {
        let c = &mut self.clients[i];
        if let Some((out, sent)) = &mut c.answer {
            let end = out.len().min(*sent + CHUNK);
            return match c.stream.write(&out[*sent..end]) {
                Ok(n) => {
                    *sent += n;
                    *sent < out.len()
                }
                Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            };
        }
        // A request line, or for `add`/`del` the line and a body up to the client's EOF.
        let (_, limit) = shape(&c.request);
        let mut buf = [0u8; CHUNK];
        let room = (limit + 1).saturating_sub(c.request.len()).min(CHUNK);
        let n = match c.stream.read(&mut buf[..room]) {
            Ok(0) if limit == MAX_BODY => 0,
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
        };
        c.request.extend_from_slice(&buf[..n]);
        let (head_end, limit) = shape(&c.request);
        let len = c.request.len();
        let reply = match head_end {
            _ if len > limit || (head_end.is_none() && len > MAX_REQUEST) => {
                self.refused += 1;
                Answer::Error(if limit == MAX_BODY {
                    format!("a list is at most {MAX_BODY} bytes; send it in parts")
                } else {
                    format!("a request is one line of at most {MAX_REQUEST} bytes")
                })
            }
            Some(_) if limit == MAX_BODY && n > 0 => return true,
            Some(end) => match std::str::from_utf8(&c.request) {
                Ok(all) => {
                    match Request::decode(all[..end].trim_end_matches('\r'), &all[end + 1..]) {
                        Ok(r) => answer(r),
                        Err(e) => Answer::Error(e.0),
                    }
                }
                Err(_) => Answer::Error("the request is not UTF-8".into()),
            },
            None => return true,
        };
        let text = reply.encode();
        let c = &mut self.clients[i];
        let _ = c.stream.shutdown(std::net::Shutdown::Read);
        c.answer = Some((text.into_bytes(), 0));
        // The time to answer (an `add` runs the firewall) is not the client's.
        c.deadline = c.deadline.max(Instant::now() + CLIENT_DEADLINE);
        // Most answers fit the socket buffer: send at once rather than wait for a wake-up.
        self.serve(i, answer)
    }
}

/// Where the request line ends (if it has yet), and how long the request may grow: a line
/// of `MAX_REQUEST` bytes, or `add`/`del` and a body up to `MAX_BODY`.
fn shape(request: &[u8]) -> (Option<usize>, usize) {
    let end = request.iter().position(|&b| b == b'\n');
    let line = end.map(|e| &request[..e]);
    let body = line.is_some_and(Request::has_body);
    (end, if body { MAX_BODY } else { MAX_REQUEST + 1 })
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `f` with the process umask set to `mask`, then restores it.
fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    let old = sys::umask(mask);
    let r = f();
    sys::umask(old);
    r
}
