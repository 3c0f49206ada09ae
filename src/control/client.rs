//! The other end of the control socket: `ampere status`, `why`, `-a` and `-d` send a request
//! and read the answer, both through `proto`. The answer is bounded too: a daemon (or whatever listens there) that
//! sends more than `MAX_ANSWER` or takes longer than `TIMEOUT` is an error.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{Answer, Request};
use crate::error::Error;

const MAX_ANSWER: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

/// What asking the daemon gave.
pub enum Asked {
    Answer(Answer),
    /// Nothing listens at the socket: the daemon is not running.
    NotRunning,
}

pub fn ask(path: &Path, request: &Request) -> Result<Asked, Error> {
    let shown = path.display();
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(Asked::NotRunning)
        }
        Err(e) => return Err(Error::io(&shown, e)),
    };
    let io = |e: io::Error| Error::io(&shown, e);
    s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let (line, body) = request.encode();
    s.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    if let Some(b) = body {
        s.write_all(b.as_bytes()).map_err(io)?;
        s.shutdown(std::net::Shutdown::Write).map_err(io)?;
    }
    let mut answer = Vec::new();
    s.take(MAX_ANSWER + 1)
        .read_to_end(&mut answer)
        .map_err(|e| Error::io(format_args!("{shown}: no complete answer"), e))?;
    if answer.is_empty() {
        return Err(Error::Protocol(format!(
            "{shown}: the daemon closed the connection without an answer"
        )));
    }
    if answer.len() as u64 > MAX_ANSWER {
        return Err(Error::Protocol(format!(
            "{shown}: the answer is over {MAX_ANSWER} bytes"
        )));
    }
    let text = String::from_utf8_lossy(&answer);
    Ok(Asked::Answer(Answer::decode(request, &text)))
}
