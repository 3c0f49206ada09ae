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

/// Which side of a `fork` this is.
pub enum Forked {
    Parent(u32),
    Child,
}

/// fork(2). Only for a process with one thread (the daemon has no other): the child may
/// allocate and run code at once, no lock can be held by a thread that is not copied.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork takes no arguments; with a single thread the child's copy of the heap
    // and of every lock is consistent.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// In a forked child: a process group of its own (the parent kills it whole), and the
/// default action for the signals whose handlers write to the parent's signal pipe.
pub fn become_helper() {
    // SAFETY: setpgid and signal take integers; SIG_DFL is a valid disposition.
    unsafe {
        libc::setpgid(0, 0);
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGALRM,
        ] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Lowers this process's CPU priority a little (nice 5, inherited by what it starts): it
/// yields to the daemon and its tools, but is not starved. At nice 15 the property test's
/// audits came more than 10 s late beside a loaded machine's other work.
pub fn lower_priority() {
    // SAFETY: setpriority takes integers; who = 0 is this process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 5);
    }
}

/// Ends this process at once, running no destructor: a forked child must not tear down
/// what it shares with its parent (an `ipset -` it would kill, a socket it would close
/// with a goodbye).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// Reaps child `pid` if it ended (its exit code, 128 + a signal); None while it runs.
pub fn reaped(pid: u32) -> Option<i32> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our local integer, valid for the call.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    match r {
        0 => None,
        r if r > 0 => Some(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }),
        // Not our child (any more): nothing to wait for.
        _ => Some(-1),
    }
}

/// A pipe (read end, write end), both blocking and closed on exec.
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened by pipe2 and are owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}
