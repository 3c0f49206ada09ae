//! `onban` / `onunban` programs (mail, chat notifications). Started with execve and an
//! argument vector, never a shell; the loop never waits for them: finished ones are reaped
//! on each turn. Each runs under `ampere --run-hook` (`runner`), the subreaper of all it
//! starts: at `hook_timeout` every process the hook started is killed, also one that left
//! its process group or session (`setsid`, a double fork). The daemon kills the runner's
//! process group itself if the runner overstays by `GRACE`.
//!
//! The attacker's AccountID reaches a hook escaped for printing, in `AMPERE_ACCOUNT`, and as
//! the third argument with a leading `-` written `\x2d`, so that it can never be taken for
//! an option.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;

pub mod runner;

/// How long past `hook_timeout` the daemon waits for the runner, which kills at the timeout.
const GRACE: Duration = Duration::from_secs(2);

/// More hooks than this at once are not started (a flood of bans must not fork-bomb a router).
const MAX_RUNNING: usize = 16;

struct Running {
    child: Child,
    started: Instant,
    deadline: Instant,
    what: String,
}

pub struct Hooks {
    onban: Option<PathBuf>,
    onunban: Option<PathBuf>,
    timeout: Duration,
    running: Vec<Running>,
    pub skipped: u64,
}

impl Hooks {
    pub fn new(cfg: &Config) -> Hooks {
        let mut h = Hooks {
            onban: None,
            onunban: None,
            timeout: Duration::ZERO,
            running: Vec::new(),
            skipped: 0,
        };
        h.reconfigure(cfg);
        h
    }

    pub fn reconfigure(&mut self, cfg: &Config) {
        self.onban = cfg.onban.clone();
        self.onunban = cfg.onunban.clone();
        self.timeout = Duration::from_secs(cfg.hook_timeout);
    }

    /// `onban ADDRESS EVENT ACCOUNT` (the account already escaped for printing).
    pub fn banned(&mut self, addr: &str, event: &str, account: &str) {
        if let Some(p) = self.onban.clone() {
            let arg = match account.strip_prefix('-') {
                Some(rest) => format!("\\x2d{rest}"),
                None => account.to_string(),
            };
            let env = [
                ("AMPERE_ADDRESS", addr),
                ("AMPERE_EVENT", event),
                ("AMPERE_ACCOUNT", account),
            ];
            self.spawn(&p, &[addr, event, &arg], &env);
        }
    }

    /// `onunban ADDRESS REASON` (`expired`, `manual`, or `max_bans`: lifted to make room).
    pub fn unbanned(&mut self, addr: &str, reason: &str) {
        if let Some(p) = self.onunban.clone() {
            let env = [("AMPERE_ADDRESS", addr), ("AMPERE_REASON", reason)];
            self.spawn(&p, &[addr, reason], &env);
        }
    }

    fn spawn(&mut self, prog: &Path, args: &[&str], env: &[(&str, &str)]) {
        self.reap();
        let what = format!("{} {}", prog.display(), args.join(" "));
        if self.running.len() >= MAX_RUNNING {
            self.skipped += 1;
            crate::warn!("hook not started, {MAX_RUNNING} still running: {what}");
            return;
        }
        let spawned = crate::exec::itself()
            .arg("--run-hook")
            .arg(self.timeout.as_secs().to_string())
            .arg(prog)
            .args(args)
            .envs(env.iter().copied())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        let now = Instant::now();
        match spawned {
            Ok(child) => self.running.push(Running {
                child,
                started: now,
                deadline: now + self.timeout + GRACE,
                what,
            }),
            Err(e) => crate::error!("cannot run hook {what}: {e}"),
        }
    }

    /// Collects finished hooks and kills those past their time.
    pub fn reap(&mut self) {
        let now = Instant::now();
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if status.code() == Some(runner::TIMED_OUT) {
                    crate::warn!(
                        "hook `{}` ran past hook_timeout ({}s): killed, with every process it started",
                        r.what,
                        self.timeout.as_secs()
                    );
                } else if !status.success() {
                    crate::warn!("hook `{}` {status}", r.what);
                }
                false
            }
            Ok(None) if now >= r.deadline => {
                crate::warn!(
                    "hook `{}`: its runner still running after {:.1}s: killed with its process group",
                    r.what,
                    (now - r.started).as_secs_f64()
                );
                crate::sys::kill_group(r.child.id());
                let _ = r.child.kill();
                let _ = r.child.wait();
                false
            }
            Ok(None) => true,
            Err(e) => {
                crate::error!("hook `{}`: {e}", r.what);
                false
            }
        });
    }

    /// When the loop should look at the hooks again: soon while any runs (to reap it).
    pub fn next_timer(&self) -> Option<Instant> {
        let soonest = self.running.iter().map(|r| r.deadline).min()?;
        Some(soonest.min(Instant::now() + Duration::from_millis(200)))
    }
}
