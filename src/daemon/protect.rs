//! Keeping protected addresses unbanned: when the trusted names resolve anew, a reload
//! changes `trust`, or the PBX's own addresses change (read every `own::REFRESH`), every
//! active ban the admission check would refuse now is lifted.

use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Daemon;
use crate::addr::net_text;
use crate::admission::{Door, Refusal};
use crate::ban::Origin;
use crate::bans::{Lift, Outcome};
use crate::resolver;
use crate::{error, info, warn};

impl Daemon {
    /// The trusted names resolve to other addresses: the engine and the SIP limit take them,
    /// and a ban of an address trusted now is lifted.
    pub(super) fn trust_changed(&mut self) {
        self.judge
            .engine
            .set_trusted_names(&resolver::networks(self.resolver.names()));
        self.sip_guard
            .reconfigure(&self.cfg, self.judge.engine.protected());
        self.lift_protected();
    }

    /// Reads the interfaces again; when the PBX's own networks changed, the engine, the SIP
    /// limit and the bans follow.
    pub(super) fn read_own(&mut self) {
        match self.own.read(crate::clock::now_epoch()) {
            Ok(false) => {}
            Ok(true) => {
                info!("the PBX's own networks changed: {}", self.own.describe());
                self.judge.engine.set_own(&self.own);
                self.sip_guard
                    .reconfigure(&self.cfg, self.judge.engine.protected());
                self.lift_protected();
            }
            Err(e) => warn!("cannot read the interfaces' addresses: {e}; keeping the last ones"),
        }
    }

    /// Lifts every active ban that the admission check would refuse now because of what it
    /// takes in (trusted, loopback, the AMI host): protection that came after the ban wins.
    pub(super) fn lift_protected(&mut self) {
        self.lift_retry = None;
        let active = match self.bans.store().active() {
            Ok(a) => a,
            Err(e) => {
                error!("cannot read the active bans to lift those of trusted addresses: {e}");
                return;
            }
        };
        let admission = self.judge.engine.admission();
        // Asked through the door it came in by: an admin's forced ban on the PBX's own link
        // stays, a daemon's does not.
        let door = |origin| match origin {
            Origin::Manual => Door::Manual {
                admin: None,
                force: true,
            },
            Origin::Crowdsec => Door::Crowdsec,
            Origin::Daemon => Door::Judged,
        };
        let (nets, by): (Vec<IpNet>, Vec<Refusal>) = active
            .iter()
            .filter_map(|b| match admission.check(&b.net, door(b.origin)) {
                Err(r) if r.lifts_a_ban() => Some((b.net, r)),
                _ => None,
            })
            .unzip();
        if nets.is_empty() {
            return;
        }
        match self.bans.remove(&nets, Lift::Protected, false, &mut |_| {}) {
            Ok((outcomes, lifted)) => {
                for ((net, p), o) in nets.iter().zip(&by).zip(outcomes) {
                    match o {
                        Outcome::Firewall(e) => error!("unbanning {} ({p}): {e}", net_text(net)),
                        _ => info!("{} {p} now: its ban is lifted", net_text(net)),
                    }
                }
                self.publish(lifted);
            }
            Err(e) => {
                warn!("cannot lift the bans of protected addresses yet: {e}; trying again in 1 s");
                self.lift_retry = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}
