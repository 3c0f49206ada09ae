//! The log door in the loop: Asterisk's log followed (`follow.rs`), each line through the
//! judge's log patterns (`logdoor.rs`) and the same write path as AMI's events; and the
//! warning that IAX2 runs unseen when the door is off.

use std::time::Instant;

use ipnet::IpNet;

use super::Daemon;
use crate::clock;
use crate::judge::Time;
use crate::warn;

impl Daemon {
    /// Reads the followed log when inotify `woken` the loop, more is waiting, or it is time
    /// to look; its bans go out like a read of AMI's.
    pub(super) fn on_log_door(&mut self, woken: bool) {
        let now = Instant::now();
        let Some(follower) = self.log_door.as_mut() else {
            return;
        };
        if !follower.due(woken, now) {
            return;
        }
        let time = Time::At {
            mono: clock::mono_secs(self.started),
            wall: clock::now_epoch(),
        };
        let Daemon {
            judge,
            bans,
            log_through_ban,
            ..
        } = self;
        let mut events = 0u32;
        follower.read(now, &mut |line| {
            let Some(j) = judge.judge_line(line, time) else {
                return;
            };
            events += 1;
            // A guess from an address banned already reached Asterisk: the ban does not
            // cover its port (IAX2's 4569 outside `ports` or the jumps).
            let net = IpNet::from(j.event.addr());
            if bans.store().is_banned(&net).unwrap_or(false) {
                *log_through_ban += 1;
                if *log_through_ban == 1 {
                    warn!(
                        "{} is banned but still reaches Asterisk ({} in its log): the ban does not cover IAX2's port 4569 (`ports`, and the jumps into the chain: see doc/setup.md)",
                        crate::addr::net_text(&net),
                        j.event.kind.name()
                    );
                }
            }
            if let Some(r) = j.request() {
                bans.queue(r);
            }
        });
        if events > 0 {
            self.last_event = Some(clock::now_epoch());
            self.rate.add(clock::mono_secs(self.started), events);
        }
        self.settle_read();
    }

    /// After a login: when chan_iax2 answered and the log door is off, says once that IAX2
    /// guesses are invisible (chan_iax2 reports nothing on AMI).
    pub(super) fn check_iax2(&mut self) {
        if self.iax2_warned || self.log_door.is_some() || !self.link.iax2_loaded() {
            return;
        }
        self.iax2_warned = true;
        warn!(
            "chan_iax2 is loaded, and it reports no security event on AMI: IAX2 guesses are invisible to Ampere. Set `authdebug = yes` in iax.conf and `asterisk_log = /var/log/asterisk/messages` (the file logger.conf writes notices and warnings to) in Ampere's config"
        );
    }

    /// The log door for `status`: a line for a person, and `key value` lines.
    pub(super) fn describe_log_door(&self) -> (String, String) {
        let c = self.judge.log_counters;
        let Some(f) = &self.log_door else {
            let iax2 = if self.link.iax2_loaded() {
                " (chan_iax2 is loaded: its guesses are not seen)"
            } else {
                ""
            };
            return (
                format!("log door: off (asterisk_log unset){iax2}\n"),
                "log_door 0\n".to_string(),
            );
        };
        let fc = f.counters;
        let through = match self.log_through_ban {
            0 => String::new(),
            n => format!(
                "; {n} from addresses banned already: the ban does not reach IAX2's port 4569"
            ),
        };
        (
            format!(
                "log door: following {}: {} lines, {} events ({} with an address Ampere does not read), {} too long, {} binary, {} rotations, {} truncations{through}\n",
                f.path().display(),
                fc.lines,
                c.events,
                c.bad_address,
                fc.too_long,
                fc.binary,
                fc.rotations,
                fc.truncations
            ),
            format!(
                "log_door 1\nlog_lines {}\nlog_events {}\nlog_bad_address {}\nlog_too_long {}\nlog_binary {}\nlog_rotations {}\nlog_truncations {}\nlog_through_ban {}\n",
                fc.lines,
                c.events,
                c.bad_address,
                fc.too_long,
                fc.binary,
                fc.rotations,
                fc.truncations,
                self.log_through_ban
            ),
        )
    }
}
