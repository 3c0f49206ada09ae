//! What the engine learns of legitimate hosts (`known.rs`): facts Asterisk reports, the
//! rows stored before a restart, forgetting, and what is handed to the database.

use std::net::IpAddr;

use super::Engine;
use crate::account;
use crate::facts::Fact;
use crate::known::{Known, Mark};

impl Engine {
    /// A fact Asterisk reported (a registration, a trunk) at `now` (`feed`'s clock). An
    /// address is made known for its account; a trunk's network marks every host in it.
    pub fn learn(&mut self, fact: &Fact<'_>, now: u64) {
        self.counters.facts += 1;
        let user = account::user(fact.account);
        let acct = account::hash(user);
        if acct == 0 {
            return;
        }
        if !crate::addr::is_host(&fact.net) {
            self.known.add_net(fact.net, acct);
            return;
        }
        let addr = fact.net.network();
        if self.admission.protects(addr).is_some() {
            return;
        }
        let key = self.key_of(addr).0.network();
        let wall = self.wall(now);
        if let Some(mark) = self.known.learn(key, addr, user, acct, fact.source, wall) {
            self.refresh_cached(key, mark, now);
        }
    }

    /// The penalty table's copy of a host's accounts, when it holds the host.
    fn refresh_cached(&mut self, key: IpAddr, mark: Mark, now: u64) {
        let (entry, tracked) = self.table.entry(key);
        if let Some(mut h) = tracked {
            h.ok_accts = mark.accts;
            self.table.put_entry(entry, h, now);
        }
    }

    /// Rows from the database at start (before the AMI login): each as it was stored, keyed
    /// as this config scores its address.
    pub fn load_known(&mut self, rows: &[crate::known::Learned]) {
        for r in rows {
            if self.admission.protects(r.addr).is_some() {
                continue;
            }
            let key = self.key_of(r.addr).0.network();
            self.known
                .load(key, account::hash(&r.account), r.source, r.last);
        }
    }

    /// Forgets the known hosts not seen since `before` (wall clock); the table's copies
    /// follow.
    pub fn forget_known(&mut self, before: i64, now: u64) -> usize {
        let changed = self.known.forget(before);
        for (key, mark) in &changed {
            self.refresh_cached(*key, *mark, now);
        }
        changed.len()
    }

    /// What was learned since the last call, for the database.
    pub fn take_learned(&mut self) -> Vec<crate::known::Learned> {
        self.known.take_learned()
    }

    /// Where nothing is stored (`--replay`): what was learned is dropped.
    pub fn discard_learned(&mut self) {
        self.known.discard_learned();
    }

    /// Rows the database did not take: written again at their hosts' next sighting.
    pub fn not_stored(&mut self, rows: &[crate::known::Learned]) {
        let keys: Vec<(IpAddr, u32)> = rows
            .iter()
            .map(|r| (self.key_of(r.addr).0.network(), account::hash(&r.account)))
            .collect();
        self.known.unwritten(&keys);
    }

    pub fn known(&self) -> &Known {
        &self.known
    }
}
