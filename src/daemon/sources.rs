//! The loop's sources behind one small interface: each adds its fds to the poll set under
//! its token and names the instant it wants the loop back; what `poll` reported is read back
//! by token, never by position (a source with nothing to wait on adds no fd, and the fds of
//! those after it move).

use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Instant;

use crate::bans::Bans;
use crate::clock;
use crate::control::Control;
use crate::crowdsec::Lapi;
use crate::follow::Follower;
use crate::hook::Hooks;
use crate::resolver::Resolver;
use crate::session::Link;
use crate::sys::{self, PollFd, SignalPipe};

use super::pace::Pace;

/// Which source an fd belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Token {
    Signals,
    Ami,
    Resolver,
    Lapi,
    Control,
    LogDoor,
    Survey,
}

const TOKENS: usize = Token::Survey as usize + 1;

pub trait Source {
    /// The fds this source waits on now, each with what it waits for.
    fn poll_fds(&self, _fds: &mut Vec<PollFd>) {}
    /// When the loop must come back to this source even if no fd is ready.
    fn next_timer(&self) -> Option<Instant>;
}

/// The fds of one turn, each source's fds together under its token.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<PollFd>,
    /// Where each token's fds are (empty: it added none, or was not added this turn).
    at: [Range<usize>; TOKENS],
}

impl PollSet {
    pub fn clear(&mut self) {
        self.fds.clear();
        self.at = Default::default();
    }

    pub fn add(&mut self, token: Token, source: &dyn Source) {
        let start = self.fds.len();
        source.poll_fds(&mut self.fds);
        self.at[token as usize] = start..self.fds.len();
    }

    fn range(&self, token: Token) -> Range<usize> {
        self.at[token as usize].clone()
    }

    /// The fds `token`'s source added (none if it added none).
    pub fn of(&self, token: Token) -> &[PollFd] {
        &self.fds[self.range(token)]
    }

    /// What `poll` reported for the first fd of `token` (0 if it has none).
    pub fn revents(&self, token: Token) -> i16 {
        self.of(token).first().map_or(0, |f| f.revents)
    }

    /// Leaves out `events` from every fd of `token` (the AMI socket held under a flood).
    pub fn mask(&mut self, token: Token, events: i16) {
        let range = self.range(token);
        for f in &mut self.fds[range] {
            f.events &= !events;
        }
    }

    pub fn poll(&mut self, timeout_ms: i32) -> std::io::Result<usize> {
        sys::poll(&mut self.fds, timeout_ms)
    }
}

fn wait_in(fds: &mut Vec<PollFd>, fd: RawFd) {
    fds.push(PollFd {
        fd,
        events: sys::POLLIN,
        revents: 0,
    });
}

impl<T: Source> Source for Option<T> {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        if let Some(s) = self {
            s.poll_fds(fds);
        }
    }
    fn next_timer(&self) -> Option<Instant> {
        self.as_ref().and_then(Source::next_timer)
    }
}

impl Source for SignalPipe {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        wait_in(fds, self.fd());
    }
    fn next_timer(&self) -> Option<Instant> {
        None
    }
}

impl Source for Link {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        if let Some((fd, events)) = self.poll_fd() {
            fds.push(PollFd {
                fd,
                events,
                revents: 0,
            });
        }
    }
    fn next_timer(&self) -> Option<Instant> {
        Link::next_timer(self)
    }
}

impl Source for Resolver {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        Resolver::poll_fd(self, fds);
    }
    fn next_timer(&self) -> Option<Instant> {
        Resolver::next_timer(self)
    }
}

impl Source for Lapi {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        Lapi::poll_fds(self, fds);
    }
    fn next_timer(&self) -> Option<Instant> {
        Lapi::next_timer(self)
    }
}

impl Source for Control {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        Control::poll_fds(self, fds);
    }
    fn next_timer(&self) -> Option<Instant> {
        Control::next_timer(self)
    }
}

impl Source for Follower {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        if let Some(fd) = self.poll_fd() {
            wait_in(fds, fd);
        }
    }
    fn next_timer(&self) -> Option<Instant> {
        Some(Follower::next_timer(self))
    }
}

/// The audit's survey child's pipe, and the store's and the kernel's timers (expiries, an
/// outage's retry, the kernel lock's).
impl Source for Bans {
    fn poll_fds(&self, fds: &mut Vec<PollFd>) {
        if let Some(fd) = self.survey_fd() {
            wait_in(fds, fd);
        }
    }
    fn next_timer(&self) -> Option<Instant> {
        self.next_timer_by(clock::now_epoch_ms)
    }
}

/// The hooks have no fd: their children are reaped on a timer.
impl Source for Hooks {
    fn next_timer(&self) -> Option<Instant> {
        Hooks::next_timer(self)
    }
}

impl Source for Pace {
    fn next_timer(&self) -> Option<Instant> {
        Pace::next_timer(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fds(Vec<RawFd>);

    impl Source for Fds {
        fn poll_fds(&self, fds: &mut Vec<PollFd>) {
            for &fd in &self.0 {
                wait_in(fds, fd);
            }
        }
        fn next_timer(&self) -> Option<Instant> {
            None
        }
    }

    #[test]
    fn each_token_finds_its_own_fds_whatever_the_others_added() {
        let mut set = PollSet::default();
        for round in 0..2 {
            set.clear();
            set.add(Token::Signals, &Fds(vec![3]));
            // The AMI link adds nothing while it waits to reconnect: the next source's fds
            // must not be taken for AMI's.
            set.add(Token::Ami, &Fds(if round == 0 { vec![] } else { vec![4] }));
            set.add(Token::Control, &Fds(vec![5, 6, 7]));
            set.add(Token::Survey, &Fds(vec![8]));
            let last = set.fds.len() - 1;
            set.fds[last].revents = sys::POLLIN;
            assert_eq!(set.of(Token::Ami).len(), round);
            assert_eq!(set.revents(Token::Ami), 0);
            let control: Vec<RawFd> = set.of(Token::Control).iter().map(|f| f.fd).collect();
            assert_eq!(control, [5, 6, 7]);
            assert_eq!(set.revents(Token::Survey), sys::POLLIN);
            assert!(set.of(Token::Lapi).is_empty(), "never added");
            set.mask(Token::Control, sys::POLLIN);
            assert!(set.of(Token::Control).iter().all(|f| f.events == 0));
            assert_eq!(set.of(Token::Survey)[0].events, sys::POLLIN);
        }
    }
}
