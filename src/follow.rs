//! A file followed like `tail -F`, for the log door: Asterisk's `messages` log, read in the
//! loop without blocking. It starts at the file's end (what was written before Ampere
//! started is not judged again), reads at most `PER_TURN` bytes per turn of the loop, and
//! survives what logrotate and admins do: a file renamed and a new one made (the rest of
//! the old one is read first, then the new one from its start), a file truncated in place
//! (read again from its start), a file deleted and made again. An inotify descriptor on the
//! file's directory wakes the loop when something changes; without one (or as a safety
//! net) the file is looked at every `CHECK_EVERY`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::logdoor::Lines;
use crate::sys::Inotify;
use crate::{info, warn};

/// Bytes read per turn of the loop at most: a log growing by 10 MB/s never holds up AMI.
pub const PER_TURN: usize = 256 * 1024;

/// How often the file is looked at without a word from inotify.
const CHECK_EVERY: Duration = Duration::from_millis(1000);
const CHECK_WITHOUT_INOTIFY: Duration = Duration::from_millis(250);

/// What the follower did, for `status` and the stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes: u64,
    pub lines: u64,
    /// Lines over `logdoor::MAX_LINE`, dropped.
    pub too_long: u64,
    /// Lines with a NUL byte or not UTF-8 (no log line of Asterisk's), dropped.
    pub binary: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub read_errors: u64,
}

pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// The (device, inode) of the file open, and where in it reading is.
    id: (u64, u64),
    offset: u64,
    lines: Lines,
    inotify: Option<Inotify>,
    next_check: Instant,
    /// The last read stopped at `PER_TURN`: there is more now.
    more: bool,
    warned: bool,
    pub counters: Counters,
}

fn id_of(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Follower {
    /// Follows `path` from its end (from its start if it is made later).
    pub fn new(path: &Path, now: Instant) -> Follower {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let inotify = match Inotify::watch_dir(dir) {
            Ok(i) => Some(i),
            Err(e) => {
                warn!(
                    "cannot watch {} ({e}): Asterisk's log is looked at every {} ms instead",
                    dir.display(),
                    CHECK_WITHOUT_INOTIFY.as_millis()
                );
                None
            }
        };
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            id: (0, 0),
            offset: 0,
            lines: Lines::default(),
            inotify,
            next_check: now,
            more: false,
            warned: false,
            counters: Counters::default(),
        };
        match File::open(path).and_then(|mut file| {
            let meta = file.metadata()?;
            let end = file.seek(SeekFrom::End(0))?;
            Ok((file, meta, end))
        }) {
            Ok((file, meta, end)) => {
                f.id = id_of(&meta);
                f.offset = end;
                f.file = Some(file);
                info!(
                    "following {} from its end ({end} bytes) for what AMI does not report",
                    path.display()
                );
            }
            Err(e) => f.missing(&e),
        }
        f
    }

    fn missing(&mut self, e: &std::io::Error) {
        if !std::mem::replace(&mut self.warned, true) {
            warn!(
                "cannot read {} ({e}): the log door waits for it (IAX2 guesses are not seen until it can)",
                self.path.display()
            );
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inotify.as_ref().map(Inotify::fd)
    }

    /// When the loop should come back for the file.
    pub fn next_timer(&self) -> Instant {
        if self.more {
            Instant::now()
        } else {
            self.next_check
        }
    }

    /// Whether the file is to be read now: inotify spoke (`woken`), the last read left
    /// more, or it is time to look.
    pub fn due(&mut self, woken: bool, now: Instant) -> bool {
        let spoke = woken && self.inotify.as_ref().is_some_and(Inotify::drain);
        spoke || self.more || now >= self.next_check
    }

    /// Reads what the file has now (at most `PER_TURN` bytes) and hands out its whole lines.
    pub fn read(&mut self, now: Instant, each: &mut dyn FnMut(&[u8])) {
        let every = if self.inotify.is_some() {
            CHECK_EVERY
        } else {
            CHECK_WITHOUT_INOTIFY
        };
        self.next_check = now + every;
        let mut budget = PER_TURN;
        let mut buf = [0u8; 65536];
        self.more = false;
        loop {
            if self.file.is_none() && !self.reopen() {
                return;
            }
            let Some(file) = self.file.as_mut() else {
                return;
            };
            let want = budget.min(buf.len());
            match file.read(&mut buf[..want]) {
                Ok(0) => {
                    // The end of this file: replaced, truncated, or just nothing new.
                    if !self.changed() {
                        return;
                    }
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.counters.bytes += n as u64;
                    budget -= n;
                    let Follower {
                        lines, counters, ..
                    } = self;
                    lines.push(&buf[..n], &mut |line| {
                        if line.contains(&0) || std::str::from_utf8(line).is_err() {
                            counters.binary += 1;
                            return;
                        }
                        counters.lines += 1;
                        each(line);
                    });
                    counters.too_long = lines.too_long;
                    if budget == 0 {
                        self.more = true;
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.counters.read_errors += 1;
                    warn!("reading {}: {e}", self.path.display());
                    self.file = None;
                    return;
                }
            }
        }
    }

    /// At the end of the open file: true when it was replaced or truncated (and reading is
    /// to go on, from the new file's or this one's start).
    fn changed(&mut self) -> bool {
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Gone (between a rename and the new file): the old one is read to its end;
            // the new one is found at the next look.
            Err(_) => return false,
        };
        if id_of(&now) != self.id {
            self.counters.rotations += 1;
            info!(
                "{} was replaced (rotated): reading the new file from its start",
                self.path.display()
            );
            self.file = None;
            self.lines.reset();
            return self.reopen();
        }
        if now.len() < self.offset {
            self.counters.truncations += 1;
            info!(
                "{} was truncated: reading it again from its start",
                self.path.display()
            );
            self.lines.reset();
            self.offset = 0;
            return self
                .file
                .as_mut()
                .is_some_and(|f| f.seek(SeekFrom::Start(0)).is_ok());
        }
        false
    }

    /// Opens the file at `path` anew, from its start.
    fn reopen(&mut self) -> bool {
        match File::open(&self.path).and_then(|f| Ok((f.metadata()?, f))) {
            Ok((meta, file)) => {
                if std::mem::replace(&mut self.warned, false) {
                    info!("reading {} again", self.path.display());
                }
                self.id = id_of(&meta);
                self.offset = 0;
                self.file = Some(file);
                true
            }
            Err(e) => {
                self.missing(&e);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
