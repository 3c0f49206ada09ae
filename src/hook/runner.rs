//! `ampere --run-hook SECONDS PROG ARGS...` (not in the usage): what the daemon runs for each
//! hook. It makes itself the subreaper of everything the hook starts, so that a process
//! that leaves the hook's process group or session (`setsid`, a daemon's double fork) is
//! still its descendant, not init's; it waits until every one has ended, and SECONDS after
//! the start kills all that are left and exits `TIMED_OUT`. Otherwise it exits with the
//! hook's own status. The daemon's loop only ever waits for this one child, without
//! blocking; this process may block, it is nobody's loop.

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::sys::reaper::{self, Reaped};

/// The exit status when the hook or something it started ran past its time (as timeout(1)).
pub const TIMED_OUT: i32 = 124;

/// How often the runner looks for ended or orphaned processes.
const TICK: Duration = Duration::from_millis(20);

pub fn run(seconds: u64, prog: &OsString, args: &[OsString]) -> ExitCode {
    if let Err(e) = reaper::become_subreaper() {
        // Still run the hook: what stays in its process group is killed by the daemon.
        eprintln!("ampere: hook runner: cannot become a subreaper: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // The environment is the daemon's for this hook (cleared, PATH and AMPERE_*).
    let hook = match Command::new(prog).args(args).spawn() {
        Ok(c) => c.id(),
        Err(e) => {
            eprintln!("ampere: cannot run hook {}: {e}", prog.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let mut status = 0;
    let mut killed = false;
    loop {
        match reaper::reap_any() {
            Reaped::Ended(pid, code) => {
                if pid == hook {
                    status = code;
                }
                continue;
            }
            Reaped::None => break,
            Reaped::Running => {}
        }
        if Instant::now() >= deadline {
            // Orphans of a killed parent become children here: the next turns get them.
            for pid in children_of(std::process::id()) {
                reaper::kill_hard(pid);
                killed = true;
            }
        }
        std::thread::sleep(TICK);
    }
    let code = if killed { TIMED_OUT } else { status };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The pids whose parent is `parent` (from /proc/PID/stat: the parent is the second field
/// after the command name, which may hold spaces and parentheses, so the name is skipped to
/// its last `)`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn children_are_read_from_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = super::children_of(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&child.id()), "{kids:?}");
    }
}
