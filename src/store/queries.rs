//! Read-only questions for `status` and `why`: what the database knows of some networks, the
//! latest bans, the active ones by origin. Each is one indexed query (by key, or the latest
//! few), so the daemon can answer them in its loop.

use ipnet::IpNet;

use super::sqlite::{Result, Stmt};
use super::{parsed, Store};
use crate::addr;
use crate::ban::{Ban, Origin};
use crate::score::Evidence;

/// The columns `ban_from` reads, in its order.
pub(super) const BAN_COLUMNS: &str =
    "addr, first_ban, last_ban, count, event, account, expires, penalty, origin, service, evidence";

/// A stored row: the latest ban of a network, whether it holds now, and the subnet ban it
/// was folded into.
#[derive(Clone, Debug)]
pub struct Record {
    pub ban: Ban,
    pub active: bool,
    pub folded_into: Option<String>,
}

/// The ban in the first columns of the current row (`BAN_COLUMNS`); None for an address that
/// does not parse (logged).
pub(super) fn ban_from(db: &str, st: &Stmt) -> Option<Ban> {
    let net = parsed(db, &st.column_text(0))?;
    Some(Ban {
        net,
        first: st.column_i64(1),
        since: st.column_i64(2),
        count: st.column_i64(3),
        reason: st.column_text(4),
        service: st.column_text(9),
        account: st.column_text(5),
        expires: st.column_opt_i64(6),
        penalty: u32::try_from(st.column_i64(7)).unwrap_or(0),
        events: 0,
        origin: Origin::parse(&st.column_text(8)),
        evidence: Evidence::parse(&st.column_text(10)),
    })
}

impl Store {
    fn records(&self, st: &mut Stmt, out: &mut Vec<Record>) -> Result<()> {
        while st.step_row()? {
            if let Some(ban) = ban_from(&self.db.path, st) {
                let folded = st.column_text(12);
                out.push(Record {
                    ban,
                    active: st.column_i64(11) != 0,
                    folded_into: (!folded.is_empty()).then_some(folded),
                });
            }
        }
        Ok(())
    }

    /// The rows of `nets` that exist, in the order given.
    pub fn records_of(&self, nets: &[IpNet]) -> Result<Vec<Record>> {
        let mut st = self.db.prepare(&format!(
            "SELECT {BAN_COLUMNS}, active, coalesce(folded_into, '') FROM bans WHERE addr = ?1"
        ))?;
        let mut out = Vec::new();
        for n in nets {
            st.reset();
            st.bind_text(1, &addr::net_text(n))?;
            self.records(&mut st, &mut out)?;
        }
        Ok(out)
    }

    /// The `n` latest bans, newest first, whether they hold now or not.
    pub fn latest(&self, n: usize) -> Result<Vec<Record>> {
        let mut st = self.db.prepare(&format!(
            "SELECT {BAN_COLUMNS}, active, coalesce(folded_into, '') FROM bans
             ORDER BY last_ban DESC, addr LIMIT ?1"
        ))?;
        st.bind_i64(1, n as i64)?;
        let mut out = Vec::new();
        self.records(&mut st, &mut out)?;
        Ok(out)
    }
}

impl Store {
    /// The database at `path` for reading only (the audit's survey child): never made,
    /// never migrated. It waits at most a second for a lock: the audit comes again soon,
    /// and a survey held up for 10 s held up every repair behind it.
    pub fn open_read_only(path: &std::path::Path) -> Result<Store> {
        Ok(Store {
            db: super::sqlite::Db::open_read_only(path, 1_000)?,
            new: false,
        })
    }

    /// Every active ban as the kernel holds it (its network and end), one row at a time: a
    /// restore of a million streams them to the firewall tool and holds none. A row whose
    /// address does not parse (edited by hand) is left out, as in `active`.
    pub fn for_each_active_entry(&self, mut f: impl FnMut(crate::firewall::Entry)) -> Result<()> {
        let mut st = self
            .db
            .prepare("SELECT addr, expires FROM bans WHERE active = 1")?;
        while st.step_row()? {
            if let Ok(net) = crate::addr::parse_net(&st.column_text(0)) {
                f(crate::firewall::Entry {
                    net,
                    expires: st.column_opt_i64(1),
                });
            }
        }
        Ok(())
    }

    /// Every active ban's network and origin, one row at a time (what `lift_protected`
    /// needs to find the few a new protection takes in, without holding a million).
    pub fn for_each_active_origin(
        &self,
        mut f: impl FnMut(IpNet, crate::ban::Origin),
    ) -> Result<()> {
        let mut st = self
            .db
            .prepare("SELECT addr, origin FROM bans WHERE active = 1")?;
        while st.step_row()? {
            if let Ok(net) = crate::addr::parse_net(&st.column_text(0)) {
                f(net, crate::ban::Origin::parse(&st.column_text(1)));
            }
        }
        Ok(())
    }

    /// Calls `f` with the address of every active ban as stored, one row at a time: the
    /// survey reads a million this way without holding them as bans.
    pub fn for_each_active_addr(&self, mut f: impl FnMut(&str)) -> Result<()> {
        let mut st = self.db.prepare("SELECT addr FROM bans WHERE active = 1")?;
        while st.step_row()? {
            f(&st.column_text(0));
        }
        Ok(())
    }
}
