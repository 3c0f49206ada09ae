//! Keeping protected addresses unbanned: when the trusted names resolve anew, a reload
//! changes `trust`, or the PBX's own addresses change (read every `own::REFRESH`), every
//! active ban the admission check would refuse now is lifted.

use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Daemon;
use crate::addr::net_text;
use crate::admission::{Door, Refusal};
use crate::ban::{BanRequest, Lifetime, Origin};
use crate::bans::{Lift, Outcome};
use crate::resolver;
use crate::{error, info, warn};

/// The most networks one lifted ban is split into around what became protected (a /64
/// around one address is 64).
const MAX_PIECES: usize = 256;

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
        self.lift_due = None;
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
        // The active bans read row by row, only those taken in kept whole: a million
        // stored bans were a million `Ban`s in memory here (170 MB).
        // Each refusal is kept with its network: the records read after are not judged again.
        let mut taken_in: std::collections::HashMap<IpNet, Refusal> = Default::default();
        let read = self.bans.store().for_each_active_origin(|net, origin| {
            if let Err(r) = admission.check(&net, door(origin)) {
                if r.lifts_a_ban() {
                    taken_in.insert(net, r);
                }
            }
        });
        let mut nets: Vec<IpNet> = taken_in.keys().copied().collect();
        nets.sort();
        let records = match read.and_then(|()| self.bans.store().records_of(&nets)) {
            Ok(r) => r,
            Err(e) => {
                error!("cannot read the active bans to lift those of trusted addresses: {e}");
                return;
            }
        };
        let lifting: Vec<(&crate::ban::Ban, Refusal)> = records
            .iter()
            .filter(|r| r.active)
            .filter_map(|r| Some((&r.ban, *taken_in.get(&r.ban.net)?)))
            .collect();
        if lifting.is_empty() {
            return;
        }
        // What was banned stays banned but for what became protected: a network of the
        // daemon's or an admin's (a subnet that folded attackers in, a /64) is banned again
        // around it (CrowdSec's decisions are CrowdSec's to make).
        let around: Vec<BanRequest> = lifting
            .iter()
            .filter(|(b, _)| b.origin != Origin::Crowdsec)
            .filter_map(|(b, _)| {
                let pieces = admission.split_around(&b.net, door(b.origin), MAX_PIECES)?;
                let lifetime = b.expires.map_or(Lifetime::Permanent, Lifetime::Until);
                Some(
                    pieces
                        .into_iter()
                        .filter(|p| *p != b.net)
                        .map(move |p| BanRequest {
                            account: b.account.clone(),
                            service: b.service.clone().into(),
                            penalty: b.penalty,
                            ..BanRequest::new(p, b.origin, "split", b.since, lifetime)
                        }),
                )
            })
            .flatten()
            .collect();
        let (nets, by): (Vec<IpNet>, Vec<Refusal>) =
            lifting.iter().map(|(b, r)| (b.net, *r)).unzip();
        match self.bans.remove(&nets, Lift::Protected, false, &mut |_| {}) {
            Ok((outcomes, lifted)) => {
                for ((net, p), o) in nets.iter().zip(&by).zip(outcomes) {
                    match o {
                        Outcome::Firewall(e) => error!("unbanning {} ({p}): {e}", net_text(net)),
                        _ => info!("{} {p} now: its ban is lifted", net_text(net)),
                    }
                }
                self.publish(lifted);
                if !around.is_empty() {
                    info!(
                        "{} network(s) around what became protected stay banned: {}",
                        around.len(),
                        around
                            .iter()
                            .map(|r| net_text(&r.net))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    for r in around {
                        self.bans.queue(r);
                    }
                    let changes = self.bans.flush(&self.cfg, crate::clock::now_epoch);
                    self.publish(changes);
                }
            }
            Err(e) => {
                warn!("cannot lift the bans of protected addresses yet: {e}; trying again in 1 s");
                self.lift_due = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}
