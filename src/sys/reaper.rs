//! What the hook runner needs of the kernel: to become the subreaper of its descendants, to
//! reap any of them, to kill one.
#![allow(unsafe_code)]

use std::io;

/// Makes this process the reaper of every descendant orphaned below it (prctl(2)
/// PR_SET_CHILD_SUBREAPER, Linux 3.4): a process that leaves its parent's process group or
/// session (setsid, a double fork) still ends up a child of this one, not of init.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What `reap_any` found.
pub enum Reaped {
    /// A child ended: its pid, and its exit code (128 + the signal when killed by one).
    Ended(u32, i32),
    /// Children run, none has ended.
    Running,
    /// No child is left.
    None,
}

/// Reaps one ended child, whichever it is, without waiting.
pub fn reap_any() -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our local integer, valid for the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Reaped::Running,
        p if p > 0 => {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            Reaped::Ended(p as u32, code)
        }
        _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => Reaped::Running,
        _ => Reaped::None,
    }
}

/// SIGKILL to process `pid` and to its process group if it leads one.
pub fn kill_hard(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid > 1 {
        // SAFETY: kill(2) takes integers only; a pid or group that is gone is ESRCH, ignored.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}
