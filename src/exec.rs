//! How Ampere starts other programs (firewall tools, hooks): execve with an argument vector,
//! a cleared environment and a fixed PATH, never a shell, so that nothing from the wire or
//! the admin's environment can change what runs.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::sys::{self, PollFd};

pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// `prog` ready to be given arguments and spawned.
pub fn command(prog: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env_clear().env("PATH", PATH);
    c
}

/// A command that runs this very program again (`--resolve`, `--run-hook`, `--list-active`):
/// /proc/self/exe, which stays right when the binary is replaced on disk by an upgrade. Under
/// qemu-user (the cross builds' tests, which set `AMPERE_TEST_RUNNER`) the kernel cannot exec
/// a foreign binary by itself: the emulator goes first, with the program's own path. Never
/// set in real use.
pub fn itself() -> Command {
    let runner = std::env::var("AMPERE_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut c = command(Path::new(emulator));
            c.args(words);
            c.arg(std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()));
            c
        }
        None => command(Path::new("/proc/self/exe")),
    }
}

/// Collects a spawned child's stdout and stderr (those that are piped) and its exit status,
/// waiting at most `limit`: a tool stuck on a lock or a hung kernel call is killed then
/// (`Ok(None)`), so that the loop is never held longer. Output beyond `MAX_OUTPUT` is
/// dropped (a listing of 100,000 iptables rules is about 6 MB).
pub fn wait_within(mut child: Child, limit: Duration) -> io::Result<Option<Output>> {
    use std::os::fd::AsRawFd;
    const MAX_OUTPUT: usize = 64 << 20;
    let deadline = Instant::now() + limit;
    let file = |fd: std::os::fd::OwnedFd| std::fs::File::from(fd);
    let mut out = child.stdout.take().map(|p| file(p.into()));
    let mut err = child.stderr.take().map(|p| file(p.into()));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while out.is_some() || err.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        let mut fds: Vec<PollFd> = [
            out.as_ref().map(|p| p.as_raw_fd()),
            err.as_ref().map(|p| p.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        .map(|fd| PollFd {
            fd,
            events: sys::POLLIN,
            revents: 0,
        })
        .collect();
        if sys::poll(&mut fds, left.as_millis().clamp(1, i32::MAX as u128) as i32)? == 0 {
            continue;
        }
        for (pipe, sink) in [(&mut out, &mut stdout), (&mut err, &mut stderr)] {
            let Some(p) = pipe.as_mut() else { continue };
            let ready = fds.iter().any(|f| f.fd == p.as_raw_fd() && f.revents != 0);
            if !ready {
                continue;
            }
            match p.read(&mut buf) {
                Ok(0) => *pipe = None,
                Ok(n) if sink.len() < MAX_OUTPUT => sink.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    // Both pipes closed: the child has exited or is about to; still bounded.
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(Output {
                status,
                stdout,
                stderr,
            }));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `prog args...` as a log line shows it, cut at 200 characters.
pub fn shown(prog: &Path, args: &[&str]) -> String {
    let mut s = format!("{} {}", prog.display(), args.join(" "));
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_cleared_and_path_fixed() {
        std::env::set_var("AMPERE_EXEC_TEST_LEAK", "x");
        let out = command(Path::new("/usr/bin/env")).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim(), format!("PATH={PATH}"));
    }

    #[test]
    fn a_hung_command_is_killed_at_its_limit_and_a_quick_one_gives_its_output() {
        use std::process::Stdio;
        let spawn = |args: &[&str]| {
            command(Path::new("/bin/sh"))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let started = Instant::now();
        let hung = wait_within(spawn(&["-c", "sleep 20"]), Duration::from_millis(200)).unwrap();
        assert!(hung.is_none());
        // Generous for a loaded machine: the command itself would take 20 s.
        assert!(started.elapsed() < Duration::from_secs(10));
        let out = wait_within(
            spawn(&["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(20),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn long_command_lines_are_cut() {
        let long = "é".repeat(300);
        let s = shown(Path::new("/sbin/x"), &[&long]);
        assert!(s.len() <= 204 && s.ends_with('…'), "{s}");
    }
}
