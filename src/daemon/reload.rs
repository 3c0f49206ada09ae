//! SIGHUP: the config read again and applied to every part of the daemon.

use std::time::{Duration, Instant};

use super::Daemon;
use crate::config;
use crate::log;
use crate::resolver;
use crate::session::Settings;
use crate::{error, info, warn};

impl Daemon {
    /// SIGHUP: reread the config and reopen the log. Restart-only keys keep their running
    /// value (and are named); changed AMI settings log in again.
    pub(super) fn reload(&mut self) {
        let loaded = match config::load(&self.cfg_path, self.cfg_explicit) {
            Ok(l) => l,
            Err(e) => {
                error!("reload failed, keeping the running config: {e}");
                let _ = log::reopen();
                return;
            }
        };
        let mut new = loaded.config;
        if !self.log_override && new.log != self.cfg.log {
            if let Err(e) = log::init(new.log.as_ref().unwrap_or(&log::Target::Stderr)) {
                error!("{e}");
            }
        } else if let Err(e) = log::reopen() {
            error!("{e}");
        }
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let changes = self.cfg.reload_into(&mut new);
        if !changes.kept.is_empty() {
            warn!(
                "changed {} take effect after a restart",
                changes.kept.join(", ")
            );
        }
        self.resolver.reconfigure(&new);
        self.judge.engine.reconfigure(&new);
        self.judge
            .engine
            .set_trusted_names(&resolver::networks(self.resolver.names()));
        self.sip_guard
            .reconfigure(&new, self.judge.engine.protected());
        self.hooks.reconfigure(&new);
        self.lapi.reconfigure(&new);
        self.bans
            .set_audit_interval(Duration::from_secs(new.audit_interval));
        if new.statsfile.is_none() {
            self.stats_due = None;
        } else if self.stats_due.is_none() {
            self.stats_due = Some(Instant::now());
        }
        self.link
            .reconfigure(Settings::from(&new), !changes.reconnect.is_empty());
        let trust_changed = changes.live.contains(&"trust");
        if changes.live.contains(&"asterisk_log") {
            self.log_door = new
                .asterisk_log
                .as_deref()
                .map(|p| crate::follow::Follower::new(p, Instant::now()));
            if new.asterisk_log.is_none() {
                info!("the log door is closed (asterisk_log unset)");
            }
        }
        self.cfg = new;
        info!("config reloaded from {}", self.cfg.source);
        if trust_changed {
            self.lift_protected();
        }
    }
}
