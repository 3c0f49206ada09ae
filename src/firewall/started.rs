//! A firewall tool started on a batch and waited for later: an admin's `-a` of a million
//! stores the next part of the list while the tool adds the last one (`bans/bulk.rs`).
//! The batch is written to an unnamed file first (`O_TMPFILE`, gone at close) that becomes
//! the tool's input: through a pipe, the writer would wait for the tool to read it all.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;

use super::{finished, Result};
use crate::exec;

/// A batch under way; `finish` waits for its tool and says how it went.
pub struct Started(Box<dyn FnOnce() -> Result<()>>);

impl Started {
    /// `finish` gives `done` (the tests' fake backend, which has no tool).
    #[cfg(test)]
    pub fn new(done: impl FnOnce() -> Result<()> + 'static) -> Started {
        Started(Box::new(done))
    }

    /// Runs `cmd args` on `input` and returns at once; None when the input cannot be put in
    /// a file or the tool not started (the caller runs the batch the usual way).
    pub fn spawn(cmd: &Path, args: &[&str], input: &[u8]) -> Option<Started> {
        let file = input_file(input).ok()?;
        let child = exec::command(cmd)
            .args(args)
            .stdin(Stdio::from(file))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let shown = exec::shown(cmd, args);
        Some(Started(Box::new(move || {
            finished(child, &shown).map(|_| ())
        })))
    }

    pub fn finish(self) -> Result<()> {
        (self.0)()
    }
}

/// `input` in an unnamed file of the temp directory, read from its start.
fn input_file(input: &[u8]) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())?;
    f.write_all(input)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_tool_reads_its_batch_and_says_how_it_went() {
        let ok = Started::spawn(
            Path::new("/bin/sh"),
            &["-c", "read a; [ \"$a\" = 'add x' ]"],
            b"add x\n",
        )
        .expect("an unnamed file in the temp directory, and sh");
        ok.finish().unwrap();
        let refused = Started::spawn(
            Path::new("/bin/sh"),
            &[
                "-c",
                "echo 'The set with the given name does not exist' >&2; exit 1",
            ],
            b"",
        )
        .unwrap();
        let e = refused.finish().unwrap_err();
        assert_eq!(e.kind, super::super::ErrorKind::MissingChain, "{e}");
    }
}
