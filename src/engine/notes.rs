//! What the engine keeps for the admin beside the penalties: the registrar's refusals that
//! followed a success (a contact limit: configuration, not an attack), and the accounts
//! that fail from an address they logged in from before (a device with an old password).
//! Bounded; shown by `status` and `why`.

use std::net::IpAddr;

/// Stale accounts kept at once; past that, the one seen longest ago goes.
const MAX_STALE: usize = 32;

/// Account names are kept this long at most (printable).
const MAX_NAME: usize = 64;

fn name(account: &[u8]) -> String {
    crate::log::printable(&account[..account.len().min(MAX_NAME)])
}

/// A refusal of the registrar right after a success for the same account and request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub addr: IpAddr,
    pub account: String,
    /// The `ACLName` (`event::REGISTRAR_REFUSALS`).
    pub acl: &'static str,
    /// Unix seconds.
    pub at: i64,
}

/// An account that fails from an address it logged in from before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub addr: IpAddr,
    pub account: String,
    pub failures: u32,
    /// Unix seconds of the first and the latest failure.
    pub first: i64,
    pub last: i64,
    /// Bans it brought.
    pub bans: u32,
}

#[derive(Debug, Default)]
pub struct Notes {
    /// Refusals after a success, in all, and the latest.
    pub refusals: u64,
    pub latest_refusal: Option<Refusal>,
    stale: Vec<Stale>,
}

impl Notes {
    /// Notes a refusal; true when it differs from the latest (worth a log line).
    pub fn refused(&mut self, addr: IpAddr, account: &[u8], acl: &'static str, at: i64) -> bool {
        self.refusals += 1;
        let account = name(account);
        let new = self
            .latest_refusal
            .as_ref()
            .is_none_or(|r| (r.addr, &r.account, r.acl) != (addr, &account, acl));
        self.latest_refusal = Some(Refusal {
            addr,
            account,
            acl,
            at,
        });
        new
    }

    /// Notes a failure of `account` from `addr`; true for the first of that pair.
    pub fn stale_failure(&mut self, addr: IpAddr, account: &[u8], at: i64) -> bool {
        let account = name(account);
        if let Some(s) = self
            .stale
            .iter_mut()
            .find(|s| s.addr == addr && s.account == account)
        {
            s.failures = s.failures.saturating_add(1);
            s.last = at;
            return false;
        }
        if self.stale.len() >= MAX_STALE {
            if let Some(i) = (0..self.stale.len()).min_by_key(|&i| self.stale[i].last) {
                self.stale.swap_remove(i);
            }
        }
        self.stale.push(Stale {
            addr,
            account,
            failures: 1,
            first: at,
            last: at,
            bans: 0,
        });
        true
    }

    /// Notes a ban of `account`'s address; returns its failures so far.
    pub fn stale_banned(&mut self, addr: IpAddr, account: &[u8]) -> u32 {
        let account = name(account);
        self.stale
            .iter_mut()
            .find(|s| s.addr == addr && s.account == account)
            .map_or(0, |s| {
                s.bans += 1;
                s.failures
            })
    }

    /// Every stale account, the latest failure first.
    pub fn stale(&self) -> Vec<&Stale> {
        let mut v: Vec<&Stale> = self.stale.iter().collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.last));
        v
    }
}
