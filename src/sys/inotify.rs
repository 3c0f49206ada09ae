//! inotify(7) on a directory: the log door's file follower learns that its file grew, was
//! replaced or truncated from one more descriptor in `poll`, instead of asking every turn.
//! (`unsafe` allowed, as in `sys`.)

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A non-blocking inotify descriptor watching one directory for what happens to its files.
pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// Watches `dir` for files written, closed, created, moved in or out, deleted.
    pub fn watch_dir(dir: &Path) -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags only; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a descriptor we just opened and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        let mask = libc::IN_MODIFY
            | libc::IN_CLOSE_WRITE
            | libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE
            | libc::IN_ATTRIB;
        // SAFETY: fd is our inotify descriptor and path a NUL-terminated string alive for
        // the call.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Inotify { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every event waiting (what happened is asked of the file system afterwards:
    /// the events only wake the loop). At most 64 KiB per call; returns whether any came.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        for _ in 0..16 {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes; fd is ours.
            let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            any = true;
        }
        any
    }
}
