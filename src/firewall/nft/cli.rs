//! One `nft -i` kept running behind a pipe for the daemon's bans, unbans and guard changes:
//! a batch costs a netlink round trip (0.1-0.3 ms with 100,000 elements in place) instead of
//! an exec of nft (about 3 ms). nft applies each input line as its own transaction; a refusal
//! goes to stderr. The acknowledgement of a batch is the answer to `describe meta mark`,
//! which touches no kernel state. Not `nft -e -i`, whose echo of each command would do: to
//! print what it added, nft fetches the whole ruleset with every element again for each
//! command (230 ms a ban with 100,000 in place, against 5 ms for an exec).
//!
//! A child that dies or hangs (`shell.rs`'s bound) costs its batch one exec of `nft -f`, and
//! a new child is started for the next. Where nft was built without its interactive CLI
//! (OpenWrt's nftables package: `--without-cli`), `nft -i` fails at once: found at the
//! daemon's start, said once, and every batch execs nft as before.

use std::cell::{Cell, RefCell};
use std::path::Path;

use super::super::shell::{Dialect, Shell, ShellError};
use super::super::{classify, run, FwError, Result};
use crate::warn;

/// Larger scripts (a restore, a big import's batch) exec `nft -f`: nft echoes every element
/// on a line of its own while Ampere is still writing, and what it echoes must fit the
/// pipe (64 KiB) until Ampere reads.
const MAX_SCRIPT: usize = 8 * 1024;

static NFT_CLI: Dialect = Dialect {
    name: "nft -i",
    args: &["-i"],
    marker: b"meta expression, datatype mark",
    acks_on_stdout: true,
};

const SENTINEL: &str = "describe meta mark\n";

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started (the admin commands, which run once): every batch execs nft.
    Off,
    Running,
    /// nft has no interactive mode here (or it never answered at the start).
    Unavailable,
    /// `nft_interactive = no`.
    Disabled,
}

pub(super) struct Cli {
    shell: RefCell<Option<Shell>>,
    state: Cell<State>,
    /// Why it is unavailable, for `status`.
    why: RefCell<String>,
    /// Batches through the child, and children replaced after a failure.
    batches: Cell<u64>,
    replaced: Cell<u64>,
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            shell: RefCell::new(None),
            state: Cell::new(State::Off),
            why: RefCell::new(String::new()),
            batches: Cell::new(0),
            replaced: Cell::new(0),
        }
    }

    /// The daemon's start: the child started and asked for its first acknowledgement.
    pub fn start(&self, nft: &Path, wanted: bool) {
        if !wanted {
            self.state.set(State::Disabled);
            return;
        }
        let started = Shell::spawn(nft, &NFT_CLI, SENTINEL.to_string())
            .map_err(|e| e.to_string())
            .and_then(|mut sh| match sh.run("") {
                Ok(()) => Ok(sh),
                Err(ShellError::Said(m) | ShellError::Broken(m)) => Err(m),
            });
        match started {
            Ok(sh) => {
                *self.shell.borrow_mut() = Some(sh);
                self.state.set(State::Running);
            }
            Err(why) => {
                warn!("nft: its interactive mode does not work here ({why}): every ban execs nft (about 1 ms more a ban)");
                *self.why.borrow_mut() = why;
                self.state.set(State::Unavailable);
            }
        }
    }

    /// Applies `script` through the child, or by one exec of `nft -f` when there is none,
    /// it broke, or the script is large.
    pub fn apply(&self, nft: &Path, script: &str) -> Result<()> {
        if self.state.get() == State::Running && script.len() <= MAX_SCRIPT {
            let mut shell = self.shell.borrow_mut();
            if shell.is_none() {
                *shell = Shell::spawn(nft, &NFT_CLI, SENTINEL.to_string()).ok();
            }
            if let Some(sh) = shell.as_mut() {
                match sh.run(script) {
                    Ok(()) => {
                        self.batches.set(self.batches.get() + 1);
                        return Ok(());
                    }
                    Err(ShellError::Said(msg)) => {
                        return Err(FwError::new(classify(&msg), msg));
                    }
                    Err(ShellError::Broken(msg)) => {
                        warn!(
                            "{msg}; this batch by one exec of nft, the next through a new nft -i"
                        );
                        *shell = None;
                        self.replaced.set(self.replaced.get() + 1);
                        let done = run(nft, &["-f", "-"], Some(script.as_bytes()));
                        // Dropping the old one killed it; the new one is ready for the next.
                        *shell = Shell::spawn(nft, &NFT_CLI, SENTINEL.to_string()).ok();
                        return done;
                    }
                }
            }
        }
        run(nft, &["-f", "-"], Some(script.as_bytes()))
    }

    /// A line for `status`.
    pub fn describe(&self) -> Option<String> {
        match self.state.get() {
            State::Off => None,
            State::Running => Some(format!(
                "nft -i kept running: {} batch(es) through it, {} child(ren) replaced",
                self.batches.get(),
                self.replaced.get()
            )),
            State::Disabled => {
                Some("nft -i off (nft_interactive = no): one exec of nft a batch".into())
            }
            State::Unavailable => Some(format!(
                "nft -i unavailable ({}): one exec of nft a batch",
                self.why.borrow()
            )),
        }
    }
}
