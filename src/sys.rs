//! Thin safe wrappers over the few libc calls the daemon needs: poll(2), a self-pipe for
//! signals, local time for log lines, the interfaces' addresses. All of Ampere's libc
//! `unsafe` lives here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

pub use libc::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

mod inotify;
pub use inotify::Inotify;
pub mod reaper;

/// Write end of the self-pipe; the signal handler only reads this atomic and calls write(2),
/// both async-signal-safe.
static SIGNAL_PIPE_WR: AtomicI32 = AtomicI32::new(-1);

/// Set by the first SIGTERM/SIGINT, which also arms the stop watchdog.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// How long a stop may take: the loop handles SIGTERM within milliseconds, but it may be
/// waiting for a firewall command or a lookup; SIGALRM then ends the process. Nothing is
/// lost by that: every ban is in the database before it goes to the kernel.
pub const STOP_GRACE_SECS: libc::c_uint = 1;

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE_WR.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    if (sig == libc::SIGTERM || sig == libc::SIGINT) && !STOPPING.swap(true, Ordering::Relaxed) {
        // SAFETY: alarm(2) is async-signal-safe and touches no memory.
        unsafe { libc::alarm(STOP_GRACE_SECS) };
    }
    // SAFETY: errno is thread-local and the pointer from __errno_location is valid for this
    // thread; saving and restoring it keeps the interrupted code's errno intact.
    let saved = unsafe { *errno_location() };
    let byte = sig as u8;
    // SAFETY: fd is the non-blocking write end of our pipe and `byte` lives for the call; a
    // full pipe just drops the byte, which is fine because a pending byte is already there.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    // SAFETY: as above.
    unsafe { *errno_location() = saved };
}

/// The stop watchdog went off: say so where a terminal or service manager sees it, and end.
extern "C" fn on_stop_overdue(_: libc::c_int) {
    const MSG: &[u8] = b"ampere: stopping took over 1 s (a firewall command or a lookup was still running); exiting now, every ban is in the database\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is static.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(0);
    }
}

#[cfg(any(target_env = "musl", target_env = "gnu"))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno_location()
}

/// Signals delivered as bytes on a non-blocking pipe, so that the poll loop sees them as an
/// ordinary readable descriptor and never runs logic inside a handler.
pub struct SignalPipe {
    rd: RawFd,
    wr: RawFd,
}

impl SignalPipe {
    pub fn install(signals: &[libc::c_int]) -> io::Result<SignalPipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        SIGNAL_PIPE_WR.store(fds[1], Ordering::Relaxed);
        let watchdog = (libc::SIGALRM, on_stop_overdue as extern "C" fn(libc::c_int));
        let handlers = signals
            .iter()
            .map(|&sig| (sig, on_signal as extern "C" fn(libc::c_int)))
            .chain(std::iter::once(watchdog));
        for (sig, handler) in handlers {
            // SAFETY: a zeroed sigaction is a valid starting value; we fill in the handler,
            // an empty mask and SA_RESTART before passing it by pointer.
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                sa.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(SignalPipe {
            rd: fds[0],
            wr: fds[1],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.rd
    }

    /// Returns the signals received since the last call (each at most once).
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes; rd is our pipe.
            let n = unsafe { libc::read(self.rd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            for &b in &buf[..n as usize] {
                let sig = libc::c_int::from(b);
                if !out.contains(&sig) {
                    out.push(sig);
                }
            }
        }
        out
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        SIGNAL_PIPE_WR.store(-1, Ordering::Relaxed);
        // SAFETY: both descriptors were opened by pipe2 and are closed exactly once here.
        unsafe {
            libc::close(self.rd);
            libc::close(self.wr);
        }
    }
}

/// SIGKILL to every process of the group `pgid` (a hook and whatever it started).
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// Makes reads and writes on `fd` return WouldBlock instead of waiting (a child's pipe read
/// in the poll loop).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) on a descriptor the caller owns; F_GETFL/F_SETFL take no pointers.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts a TCP connect without waiting for it: a non-blocking socket whose connect is
/// under way (poll it for POLLOUT, then `TcpStream::take_error`) or already done (true).
pub fn connect_start(addr: &std::net::SocketAddr) -> io::Result<(std::net::TcpStream, bool)> {
    use std::os::fd::FromRawFd;
    // SAFETY: a zeroed sockaddr_storage is valid; we fill in the family's fields below and
    // pass its real length.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::c_int::from(ss.ss_family),
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket we just opened and own; the TcpStream closes it exactly once.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    // SAFETY: ss holds a valid address of `len` bytes for fd's family.
    let rc = unsafe {
        libc::connect(
            fd,
            (&ss as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok((stream, true));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok((stream, false)),
        _ => Err(err),
    }
}

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;

#[derive(Clone, Copy, Debug)]
pub struct PollFd {
    pub fd: RawFd,
    pub events: i16,
    pub revents: i16,
}

/// poll(2); an interrupted call (a signal arrived) counts as "nothing ready" because the
/// signal itself shows up on the self-pipe.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    let mut raw: Vec<libc::pollfd> = fds
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd,
            events: p.events,
            revents: 0,
        })
        .collect();
    // SAFETY: raw is a valid array of raw.len() pollfd structs for the duration of the call.
    let n = unsafe { libc::poll(raw.as_mut_ptr(), raw.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    for (p, r) in fds.iter_mut().zip(raw.iter()) {
        p.revents = r.revents;
    }
    Ok(n as usize)
}

/// Broken-down local time (as the admin's TZ / /etc/localtime says).
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
}

// libc's `time_t` is 32 bits on 32-bit musl targets (the ABI the plain `localtime_r` symbol
// keeps serving); a time it cannot hold is shown in UTC instead of wrapping around.
// On 64-bit targets the conversion cannot fail.
#[allow(deprecated, irrefutable_let_patterns)]
pub fn local_time(epoch_secs: i64) -> LocalTime {
    let Ok(t) = libc::time_t::try_from(epoch_secs) else {
        return utc_time(epoch_secs);
    };
    // SAFETY: tm is plain data; localtime_r writes into it and only reads `t`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return utc_time(epoch_secs);
        }
        tm
    };
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
    }
}

/// UTC computed without libc (Howard Hinnant's civil-from-days): the fallback of
/// `local_time`, and the times CrowdSec's API takes.
pub fn utc_time(epoch_secs: i64) -> LocalTime {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LocalTime {
        year,
        month,
        day,
        hour: secs / 3600,
        min: secs / 60 % 60,
        sec: secs % 60,
    }
}

/// An exclusive flock(2) on a file, held until dropped (closing the file releases it, also
/// when the process dies: a killed `ampere -a` never leaves it held).
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock on `path` (created 0600 if missing), waiting for it if `wait`.
    /// Ok(None): another process holds it and `wait` is false.
    pub fn take(path: &std::path::Path, wait: bool) -> io::Result<Option<FileLock>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        loop {
            // SAFETY: flock(2) on a descriptor we own for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(Some(FileLock { _file: file }));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if !wait => return Ok(None),
                _ => return Err(e),
            }
        }
    }
}

/// The user id of the process at the other end of a connected Unix socket (SO_PEERCRED):
/// the kernel's word, not the client's.
pub fn peer_uid(fd: RawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given, for the whole call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's effective user id.
/// Every address on the machine's interfaces, as (interface, address, prefix length): one
/// netlink dump by getifaddrs(3), answered by the kernel at once (no lookup, no waiting).
pub fn interface_addresses() -> io::Result<Vec<(String, std::net::IpAddr, u8)>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    // qemu-user's netlink never ends the dump for a big-endian MIPS guest: musl's
    // getifaddrs spins there (qemu-mips-static, Debian 12). Under the cross tests' emulator
    // (`AMPERE_TEST_RUNNER`, never set in real use) the interfaces are not read on MIPS, and
    // the daemon goes on as when a read fails: with the addresses it has.
    if cfg!(target_arch = "mips") && std::env::var_os("AMPERE_TEST_RUNNER").is_some() {
        return Err(io::Error::other(
            "not read under qemu-user, whose netlink spins for big-endian MIPS",
        ));
    }
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes the head of a list it allocates into `head` on success.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs made, alive until freeifaddrs below.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string in the list's memory.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is not null and starts with a sockaddr header.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let entry = match family {
            libc::AF_INET => {
                // SAFETY: for AF_INET both point to sockaddr_in structures of the list.
                let (a, m) = unsafe {
                    (
                        &*(ifa.ifa_addr as *const libc::sockaddr_in),
                        &*(ifa.ifa_netmask as *const libc::sockaddr_in),
                    )
                };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                let len = u32::from_be(m.sin_addr.s_addr).count_ones() as u8;
                (IpAddr::V4(ip), len)
            }
            libc::AF_INET6 => {
                // SAFETY: for AF_INET6 both point to sockaddr_in6 structures of the list.
                let (a, m) = unsafe {
                    (
                        &*(ifa.ifa_addr as *const libc::sockaddr_in6),
                        &*(ifa.ifa_netmask as *const libc::sockaddr_in6),
                    )
                };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let len = u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8;
                (IpAddr::V6(ip), len)
            }
            _ => continue,
        };
        out.push((name, entry.0, entry.1));
    }
    // SAFETY: head came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

pub fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Sets the process's file mode creation mask; returns the old one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail and touches no memory.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for &t in &[0i64, 951_782_400, 1_795_423_282, 4_102_444_800] {
            let c = utc_time(t);
            let back = crate::clock::days_from_civil(i64::from(c.year), c.month, c.day) * 86_400
                + i64::from(c.hour) * 3600
                + i64::from(c.min) * 60
                + i64::from(c.sec);
            assert_eq!(back, t);
        }
        let c = utc_time(951_782_400); // 2000-02-29
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
    }

    #[test]
    fn self_pipe_delivers_signal() {
        let pipe = SignalPipe::install(&[SIGUSR1]).unwrap();
        // SAFETY: raising a signal we installed a handler for, in this process.
        unsafe { libc::raise(SIGUSR1) };
        let mut fds = [PollFd {
            fd: pipe.fd(),
            events: POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut fds, 1000).unwrap(), 1);
        assert_eq!(pipe.drain(), vec![SIGUSR1]);
        assert!(pipe.drain().is_empty());
    }
}
