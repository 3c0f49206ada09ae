//! The bans pulled from CrowdSec: how many are active, and the pull number (`pulled`) that
//! says which list last held each one (see `bans::pulled`).

use ipnet::IpNet;

use super::sqlite::Result;
use super::tally::Tally;
use super::{ended_nets, Store};
use crate::ban::Origin;

impl Store {
    /// The number of the latest pull from CrowdSec that listed a ban (0: none). Read once
    /// per start of the bouncer: it scans the table.
    pub fn last_pull(&self) -> Result<i64> {
        self.db
            .query_i64("SELECT coalesce(max(pulled), 0) FROM bans")
    }

    /// Marks the active bans among `nets` that came from CrowdSec as listed by pull
    /// `pull`. Returns, per network, whether it was one.
    pub fn mark_pulled(&mut self, nets: &[IpNet], pull: i64) -> Result<Vec<bool>> {
        self.per_net(
            "UPDATE bans SET pulled = ?2
             WHERE addr = ?1 AND active = 1 AND origin = 'crowdsec' RETURNING 1",
            nets,
            Some(pull),
            |_, _| true,
        )
    }

    /// Ends the active bans among `nets` that came from CrowdSec (a decision LAPI deleted)
    /// in a pull before `pull`: a deletion never undoes a decision listed later in the same
    /// answer. A ban of any other origin stays. The rows stay, as after an expiry. Returns
    /// the networks ended, for the firewall.
    pub fn end_crowdsec(&mut self, nets: &[IpNet], pull: i64) -> Result<Vec<IpNet>> {
        let ended = self.per_net(
            "UPDATE bans SET active = 0
             WHERE addr = ?1 AND active = 1 AND origin = 'crowdsec'
               AND coalesce(pulled, 0) < ?2 RETURNING 1",
            nets,
            Some(pull),
            |_, tally: &mut Tally| {
                tally.add(Origin::Crowdsec, -1);
                true
            },
        )?;
        Ok(nets
            .iter()
            .zip(ended)
            .filter(|(_, e)| *e)
            .map(|(n, _)| *n)
            .collect())
    }

    /// Ends up to `n` active bans from CrowdSec that pull `pull`, a whole list, did not
    /// hold: LAPI no longer has their decisions. Returns the networks, for the firewall.
    pub fn end_unlisted(&mut self, pull: i64, n: usize) -> Result<Vec<IpNet>> {
        self.in_transaction(|db| {
            let mut st = db.prepare(
                "UPDATE bans SET active = 0 WHERE addr IN (
                    SELECT addr FROM bans WHERE active = 1 AND origin = 'crowdsec'
                      AND coalesce(pulled, 0) < ?1 LIMIT ?2)
                 RETURNING addr, origin",
            )?;
            st.bind_i64(1, pull)?;
            st.bind_i64(2, i64::try_from(n).unwrap_or(i64::MAX))?;
            ended_nets(db, &mut st)
        })
    }
}
