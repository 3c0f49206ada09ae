//! Ampere's memory of legitimate hosts: which accounts authenticated (or are registered, or
//! are a configured trunk) from which host, and when last. The penalty table keeps a Bloom
//! filter of these per host as a cache (`table::Host::ok_accts`), filled from here whenever
//! a host enters it; this memory is the authority, bounded (`known_max` rows, the longest
//! unseen first out), forgotten after `known_forget` without being seen again, and written
//! to the database (`store::known`) so that a restart of Ampere, of Asterisk or of the
//! machine forgets nothing: a phone's keepalives stay free after any restart.
//!
//! No I/O here: what is to be written is handed out (`take_learned`), and what was stored
//! is handed in (`load`). Time is the wall clock in unix seconds, given by the caller.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::account::Name;
use crate::facts::Source;
use crate::table::{key_of, FoldState, Host};

/// A row is written again at most this often while its host keeps showing up (a phone
/// registers every few minutes): what a crash can lose is at most this much of a refresh.
/// A row seen for the first time (or better proved than before) is written at once.
pub const WRITE_EVERY: i64 = 600;

/// Trunk networks (a `Match` wider than one address) kept at most.
const MAX_NETS: usize = 256;

/// Words of `Known::filter`.
const FILTER_WORDS: usize = 256;

/// The filter's bit of a key: its words folded (no key: hosts cannot pick their bit to any
/// gain, a false positive only costs a lookup).
fn filter_bit(k: &Key) -> (usize, u64) {
    let h = (k[0] ^ k[1].rotate_left(7) ^ k[2].rotate_left(13) ^ k[3]).wrapping_mul(0x9e37_79b9);
    let bit = (h >> 18) as usize;
    (bit / 64 % FILTER_WORDS, 1 << (bit % 64))
}

/// What is to be stored of one host and account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The address as Asterisk reported it (the row's key with `account`).
    pub addr: IpAddr,
    /// The account's user part (`account::user`), cut to `account::MAX_NAME` bytes.
    pub account: Name,
    pub source: Source,
    /// Unix seconds when it was last seen.
    pub last: i64,
}

/// 12 bytes: times as unix seconds in 32 bits (until 2106).
#[derive(Clone, Copy, Debug)]
struct Row {
    last: u32,
    /// When it was last handed out for the database; 0: never.
    written: u32,
    source: Source,
}

/// What a host's rows add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The Bloom bits of its accounts (`table::Host::bits`).
    pub accts: u32,
    /// One of its rows comes from a source that proves the address (`Source::proved`).
    pub proved: bool,
}

/// A host's key in the penalty table as 16 bytes (`table::key_of`): an `IpAddr` map key
/// took 24.
type Key = [u32; 4];

fn secs(t: i64) -> u32 {
    t.clamp(1, i64::from(u32::MAX)) as u32
}

pub struct Known {
    /// By (the host's key, the account's hash): 32 bytes an entry.
    rows: HashMap<(Key, u32), Row, FoldState>,
    /// By the host's key: its rows added up, for seeding the penalty table per new host.
    marks: HashMap<Key, Mark, FoldState>,
    /// Trunks identified by a network, with the account (endpoint) hash.
    nets: Vec<(IpNet, u32)>,
    max: usize,
    /// A Bloom filter of the hosts in `marks` (one bit each, 16,384 bits): a host new to the
    /// penalty table asks `mark`, and nearly every one is a stranger, answered here without
    /// hashing into `marks` (a scan of one-off addresses paid 2 % of its time for that).
    filter: Box<[u64; FILTER_WORDS]>,
    learned: Vec<Learned>,
    /// Reused by eviction: (last seen, row) and the hosts touched.
    scratch: Vec<(u32, (Key, u32))>,
    scratch_keys: Vec<Key>,
}

impl Known {
    pub fn new(max: usize) -> Known {
        Known {
            rows: HashMap::with_hasher(FoldState::new()),
            marks: HashMap::with_hasher(FoldState::new()),
            nets: Vec::new(),
            max: max.max(1),
            filter: Box::new([0; FILTER_WORDS]),
            learned: Vec::new(),
            scratch: Vec::new(),
            scratch_keys: Vec::new(),
        }
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        while self.rows.len() > self.max {
            self.evict_oldest();
        }
    }

    /// Rows held (one per host and account).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.nets.is_empty()
    }

    /// Trunk networks held.
    pub fn networks(&self) -> usize {
        self.nets.len()
    }

    /// What is known of the host keyed `key` (a network's first address, or an address):
    /// its rows, and every trunk network that takes it in. None for a stranger.
    #[inline]
    pub fn mark(&self, key: IpAddr) -> Option<Mark> {
        let k = key_of(key);
        let (w, b) = filter_bit(&k);
        let mut m = if self.filter[w] & b == 0 {
            None
        } else {
            self.marks.get(&k).copied()
        };
        for (net, acct) in &self.nets {
            if net.contains(&key) {
                let prev = m.unwrap_or_default();
                m = Some(Mark {
                    accts: prev.accts | Host::bits(*acct),
                    proved: true,
                });
            }
        }
        m
    }

    /// Whether `acct` authenticated from the host keyed `key` (a login, an IAX2
    /// registration, a trunk): proved, exact (the table's Bloom bits are only a hint).
    pub fn authenticated(&self, key: IpAddr, acct: u32) -> bool {
        self.rows
            .get(&(key_of(key), acct))
            .is_some_and(|r| r.source.proved())
            || self
                .nets
                .iter()
                .any(|(n, a)| *a == acct && n.contains(&key))
    }

    /// A row from the database, at start: known, and not written again before `WRITE_EVERY`.
    pub fn load(&mut self, key: IpAddr, acct: u32, source: Source, last: i64) {
        self.put(key_of(key), acct, source, secs(last), secs(last));
    }

    /// Asterisk reported `account` (its user part, already hashed as `acct`) for `addr`,
    /// scored as `key`, at `now`. Returns the host's mark when it changed (a new account or
    /// a better proof), for the penalty table's cache.
    pub fn learn(
        &mut self,
        key: IpAddr,
        addr: IpAddr,
        account: &[u8],
        acct: u32,
        source: Source,
        now: i64,
    ) -> Option<Mark> {
        if acct == 0 {
            return None;
        }
        let k = key_of(key);
        let now = secs(now);
        let before = self.marks.get(&k).copied();
        let (changed, due) = match self.rows.get_mut(&(k, acct)) {
            Some(row) => {
                let better = source.proved() && !row.source.proved();
                if better {
                    row.source = source;
                }
                row.last = row.last.max(now);
                let due = better || now.saturating_sub(row.written) >= WRITE_EVERY as u32;
                if due {
                    row.written = now;
                }
                (better, due.then_some(*row))
            }
            None => {
                let row = self.put(k, acct, source, now, now);
                (true, Some(row))
            }
        };
        if let Some(row) = due {
            let m = self.marks.entry(k).or_default();
            m.proved |= row.source.proved();
            // Bounded where nobody takes them (`--replay`): the rows are written again at
            // their next sighting anyway.
            if self.learned.len() < self.max {
                self.learned.push(Learned {
                    addr,
                    account: Name::new(account),
                    source: row.source,
                    last: i64::from(row.last),
                });
            }
        }
        let after = self.marks.get(&k).copied();
        (changed && after != before).then(|| after.unwrap_or_default())
    }

    fn put(&mut self, k: Key, acct: u32, source: Source, last: u32, written: u32) -> Row {
        if !self.rows.contains_key(&(k, acct)) && self.rows.len() >= self.max {
            self.evict_oldest();
        }
        let row = *self
            .rows
            .entry((k, acct))
            .and_modify(|r| {
                r.last = r.last.max(last);
                if source.proved() {
                    r.source = source;
                }
            })
            .or_insert(Row {
                last,
                written,
                source,
            });
        let m = self.marks.entry(k).or_default();
        m.accts |= Host::bits(acct);
        m.proved |= row.source.proved();
        let (w, b) = filter_bit(&k);
        self.filter[w] |= b;
        row
    }

    /// Makes room: the eighth of the rows seen longest ago go at once, so that one scan of
    /// the rows pays for `max / 8` new ones (a full memory takes a login from a host it
    /// never held; the buffers are reused: nothing is allocated per login).
    fn evict_oldest(&mut self) {
        self.scratch.clear();
        self.scratch
            .extend(self.rows.iter().map(|(k, r)| (r.last, *k)));
        let n = (self.scratch.len() / 8).max(1).min(self.scratch.len());
        if n == 0 {
            return;
        }
        self.scratch.select_nth_unstable(n - 1);
        self.scratch_keys.clear();
        for i in 0..n {
            let k = self.scratch[i].1;
            self.rows.remove(&k);
            self.scratch_keys.push(k.0);
        }
        let mut keys = std::mem::take(&mut self.scratch_keys);
        self.remark(&mut keys);
        self.scratch_keys = keys;
    }

    /// Adds up the rows of `keys` again after rows went (`keys` is sorted here), and makes
    /// the filter again from the hosts left.
    fn remark(&mut self, keys: &mut [Key]) {
        keys.sort_unstable();
        for k in keys.iter() {
            self.marks.remove(k);
        }
        for ((key, acct), row) in &self.rows {
            if keys.binary_search(key).is_ok() {
                let m = self.marks.entry(*key).or_default();
                m.accts |= Host::bits(*acct);
                m.proved |= row.source.proved();
            }
        }
        self.filter.fill(0);
        for k in self.marks.keys() {
            let (w, b) = filter_bit(k);
            self.filter[w] |= b;
        }
    }

    /// Forgets every row not seen since `before`. Returns the keys whose mark changed,
    /// each with what is left of it.
    pub fn forget(&mut self, before: i64) -> Vec<(IpAddr, Mark)> {
        let before = secs(before);
        let mut keys: Vec<Key> = self
            .rows
            .iter()
            .filter(|(_, r)| r.last < before)
            .map(|((k, _), _)| *k)
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        self.rows.retain(|_, r| r.last >= before);
        keys.sort_unstable();
        keys.dedup();
        self.remark(&mut keys);
        keys.into_iter()
            .map(|k| (addr_of(k), self.marks.get(&k).copied().unwrap_or_default()))
            .collect()
    }

    /// A trunk identified by a network wider than one address.
    pub fn add_net(&mut self, net: IpNet, acct: u32) {
        if self.nets.len() < MAX_NETS && !self.nets.contains(&(net, acct)) {
            self.nets.push((net, acct));
        }
    }

    /// What was learned since the last call, for the database.
    pub fn take_learned(&mut self) -> Vec<Learned> {
        std::mem::take(&mut self.learned)
    }

    /// Where nothing is stored (`--replay`): what was learned is dropped, its buffer kept.
    pub fn discard_learned(&mut self) {
        self.learned.clear();
    }

    /// A write that failed: written again at the host's next sighting.
    pub fn unwritten(&mut self, keys: &[(IpAddr, u32)]) {
        for (key, acct) in keys {
            if let Some(r) = self.rows.get_mut(&(key_of(*key), *acct)) {
                r.written = 0;
            }
        }
    }
}

/// The key's address again (an IPv4 address comes back as IPv4).
fn addr_of(k: Key) -> IpAddr {
    let mut o = [0u8; 16];
    for (i, w) in k.iter().enumerate() {
        o[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    std::net::Ipv6Addr::from(o).to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_login_is_learned_once_and_refreshed_at_most_every_interval() {
        let mut k = Known::new(10);
        let a = ip("10.99.1.2");
        let acct = crate::account::key(b"1001");
        assert!(k.mark(a).is_none());
        let m = k.learn(a, a, b"1001", acct, Source::Login, 1000).unwrap();
        assert!(m.proved && m.accts == Host::bits(acct));
        assert_eq!(k.take_learned().len(), 1);
        // The phone registers every minute: no new row, no write until the interval.
        for t in (1060..1000 + WRITE_EVERY).step_by(60) {
            assert!(k.learn(a, a, b"1001", acct, Source::Login, t).is_none());
        }
        assert!(k.take_learned().is_empty());
        k.learn(a, a, b"1001", acct, Source::Login, 1000 + WRITE_EVERY);
        let w = k.take_learned();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].last, 1000 + WRITE_EVERY);
    }

    #[test]
    fn a_proof_upgrades_a_registration_and_is_written_at_once() {
        let mut k = Known::new(10);
        let a = ip("10.99.1.2");
        let acct = crate::account::key(b"1001");
        let m = k.learn(a, a, b"1001", acct, Source::Contact, 0).unwrap();
        assert!(!m.proved);
        k.take_learned();
        let m = k.learn(a, a, b"1001", acct, Source::Login, 10).unwrap();
        assert!(m.proved);
        assert_eq!(k.take_learned()[0].source, Source::Login);
        // ... and never downgraded.
        k.learn(a, a, b"1001", acct, Source::Contact, 20);
        assert!(k.mark(a).unwrap().proved);
    }

    #[test]
    fn bounded_the_longest_unseen_first_out_and_forgotten_in_time() {
        let mut k = Known::new(3);
        for (i, t) in [(1, 100), (2, 50), (3, 300)] {
            let a = ip(&format!("192.0.2.{i}"));
            k.learn(
                a,
                a,
                b"1001",
                crate::account::key(b"1001"),
                Source::Login,
                t,
            );
        }
        let d = ip("192.0.2.4");
        k.learn(
            d,
            d,
            b"1001",
            crate::account::key(b"1001"),
            Source::Login,
            400,
        );
        assert_eq!(k.len(), 3);
        assert!(k.mark(ip("192.0.2.2")).is_none(), "seen longest ago");
        assert!(k.mark(ip("192.0.2.1")).is_some());
        let changed = k.forget(301);
        let keys: Vec<IpAddr> = changed.iter().map(|c| c.0).collect();
        assert_eq!(keys, [ip("192.0.2.1"), ip("192.0.2.3")]);
        assert!(changed.iter().all(|c| c.1 == Mark::default()));
        assert_eq!(k.len(), 1);
        assert!(k.mark(d).is_some());
    }

    #[test]
    fn a_host_with_two_accounts_keeps_the_other_when_one_is_forgotten() {
        let mut k = Known::new(10);
        let a = ip("10.99.1.2");
        let (x, y) = (crate::account::key(b"1001"), crate::account::key(b"1002"));
        k.learn(a, a, b"1001", x, Source::Login, 10);
        k.learn(a, a, b"1002", y, Source::Contact, 100);
        let changed = k.forget(50);
        assert_eq!(changed.len(), 1);
        let m = changed[0].1;
        assert_eq!(m.accts, Host::bits(y));
        assert!(!m.proved);
        assert_eq!(k.mark(a), Some(m));
    }

    #[test]
    fn a_trunk_network_marks_every_host_in_it() {
        let mut k = Known::new(10);
        k.add_net(
            "203.0.113.0/24".parse().unwrap(),
            crate::account::key(b"provider"),
        );
        let m = k.mark(ip("203.0.113.77")).unwrap();
        assert!(m.proved);
        assert!(k.mark(ip("203.0.114.1")).is_none());
        assert_eq!(k.networks(), 1);
    }
}
