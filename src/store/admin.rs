//! The admin's writes (`-a` of an active temporary ban, `-d`), and the one-statement-per-
//! network helper they share with CrowdSec's.

use ipnet::IpNet;

use super::sqlite::{Result, Stmt};
use super::tally::Tally;
use super::Store;
use crate::addr;
use crate::ban::Origin;

impl Store {
    /// Makes active temporary bans permanent (an admin's `-a` of one). Returns, per network,
    /// whether it was one.
    pub fn make_permanent(&mut self, nets: &[IpNet]) -> Result<Vec<bool>> {
        self.in_transaction(|db| {
            // The origin it had, for the tally: RETURNING gives only the new one.
            let mut find = db.prepare(
                "SELECT origin FROM bans WHERE addr = ?1 AND active = 1 AND expires IS NOT NULL",
            )?;
            let mut set =
                db.prepare("UPDATE bans SET expires = NULL, origin = 'manual' WHERE addr = ?1")?;
            let mut tally = Tally::default();
            let mut out = Vec::with_capacity(nets.len());
            for n in nets {
                let key = addr::net_text(n);
                find.reset();
                find.bind_text(1, &key)?;
                let was = find
                    .step_row()?
                    .then(|| Origin::parse(&find.column_text(0)));
                find.reset();
                if let Some(o) = was {
                    set.reset();
                    set.bind_text(1, &key)?;
                    set.step_done()?;
                    tally.moved(o, Origin::Manual);
                }
                out.push(was.is_some());
            }
            tally.write(db)?;
            Ok(out)
        })
    }

    /// Forgets networks entirely (an admin's `-d`). Returns, per network, whether it was an
    /// active ban.
    pub fn remove_many(&mut self, nets: &[IpNet]) -> Result<Vec<bool>> {
        self.per_net(
            "DELETE FROM bans WHERE addr = ?1 RETURNING active, origin",
            nets,
            None,
            |st, tally| {
                let active = st.column_i64(0) == 1;
                if active {
                    tally.add(Origin::parse(&st.column_text(1)), -1);
                }
                active
            },
        )
    }

    /// Runs `sql` (`?1` is the network's key, `?2` the number `also` if given) once per
    /// network, all in one transaction. Returns, per network, whether `row` said yes to a
    /// row it returned; `row` tells the tally what the row changed.
    pub(super) fn per_net(
        &mut self,
        sql: &str,
        nets: &[IpNet],
        also: Option<i64>,
        row: impl Fn(&Stmt, &mut Tally) -> bool,
    ) -> Result<Vec<bool>> {
        self.in_transaction(|db| {
            let mut st = db.prepare(sql)?;
            let mut tally = Tally::default();
            let mut out = Vec::with_capacity(nets.len());
            for n in nets {
                st.reset();
                st.bind_text(1, &addr::net_text(n))?;
                if let Some(v) = also {
                    st.bind_i64(2, v)?;
                }
                let mut any = false;
                while st.step_row()? {
                    any |= row(&st, &mut tally);
                }
                out.push(any);
            }
            tally.write(db)?;
            Ok(out)
        })
    }
}
