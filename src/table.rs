//! Penalties per remote host in a fixed-size open-addressed table (linear probing,
//! backward-shift deletion, so no tombstones build up). It never grows: when full, a sampled
//! least-recently-seen host is evicted, so a distributed scan from millions of addresses
//! leaves memory flat. Nothing is allocated per event.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// What the table remembers of one host besides its address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Host {
    pub penalty: u32,
    /// When the penalty last grew (the engine's seconds): it decays after `findtime`.
    pub scored: u64,
    /// The account (a hash, 0 = none) whose credential failures `acct_penalty` counts:
    /// what a success for that same account takes back.
    pub acct: u32,
    /// (Saturating: past 255 a success takes back less, never more; the default limit is
    /// 15.)
    pub acct_penalty: u8,
    /// The accounts that have authenticated from this host: a 32-bit Bloom filter of their
    /// hashes, two bits each (`Host::logged_in`), so a phone with several lines is
    /// remembered for each.
    pub ok_accts: u32,
    /// Events that raised the penalty since it last started from zero (pushed to CrowdSec;
    /// counts past 65,535 read as that).
    pub events: u16,
    /// The session (a hash of `SessionID`, 0 = none) of the latest challenge, and what the
    /// challenges of that session added while none of its answers failed: what a success in
    /// that same session takes back (chan_sip's call: challenged as `sip:1001@pbx`,
    /// successful as the dialled `600`).
    pub sess: u16,
    pub sess_penalty: u8,
    /// What strong evidence added (`score::Evidence`; saturating): only a penalty it
    /// reaches alone bans for good and as wide as the prefix. At most `penalty`.
    pub strong: u16,
}

impl Host {
    /// Bloom bits of an account hash: two of 32, from independent parts of the hash.
    pub fn bits(acct: u32) -> u32 {
        (1 << (acct & 31)) | (1 << ((acct >> 5) & 31))
    }

    pub fn note_login(&mut self, acct: u32) {
        if acct != 0 {
            self.ok_accts |= Host::bits(acct);
        }
    }

    /// Whether `acct` has authenticated from this host (false positives: about 0.1 % with
    /// one account remembered, 3 % with three).
    pub fn logged_in(&self, acct: u32) -> bool {
        acct != 0 && self.ok_accts & Host::bits(acct) == Host::bits(acct)
    }

    pub fn ever_logged_in(&self) -> bool {
        self.ok_accts != 0
    }
}

/// 40 bytes: the address as IPv4-mapped IPv6 words and its `Host`. When it was last seen
/// is in the table's `ranks`. (44 bytes cost the one-off replay 9 % of its time: a slot and
/// its neighbour no longer shared a cache line as often.)
#[derive(Clone, Copy, Default)]
struct Slot {
    key: [u32; 4],
    penalty: u32,
    scored: u32,
    acct: u32,
    ok_accts: u32,
    acct_penalty: u8,
    sess_penalty: u8,
    events: u16,
    sess: u16,
    strong: u16,
}

impl Slot {
    fn host(&self) -> Host {
        Host {
            penalty: self.penalty,
            scored: u64::from(self.scored.saturating_sub(1)),
            acct: self.acct,
            acct_penalty: self.acct_penalty,
            ok_accts: self.ok_accts,
            events: self.events,
            sess: self.sess,
            sess_penalty: self.sess_penalty,
            strong: self.strong,
        }
    }
}

/// Eviction order of a slot seen at `seen` (stored plus one, so never 0): the smallest goes
/// first (see `evict_one`). A host no account logged in from, then the lowest penalty, then
/// the least recently seen, as one number (penalties past 2^31 count as equal).
fn rank(s: &Slot, seen: u32) -> u64 {
    (u64::from(s.ok_accts != 0) << 63)
        | (u64::from(s.penalty.min(i32::MAX as u32)) << 32)
        | u64::from(seen)
}

/// How many hosts the eviction clock looks at, at least, to pick its victim...
const EVICTION_SAMPLE: usize = 16;
/// ...in windows of this many slots (16 hosts at the load a full table has with the
/// default size: half its slots).
const EVICTION_WINDOW: usize = 32;

/// A slot `PenaltyTable::entry` found for an address (see there).
pub struct Entry {
    key: [u32; 4],
    i: usize,
    found: bool,
}

pub struct PenaltyTable {
    slots: Box<[Slot]>,
    /// Each slot's `rank`, 0 for an empty slot: the eviction clock walks these 8 bytes a
    /// slot and never the slots themselves (that walk was a fifth of the time of a scan
    /// from one-off addresses, nearly all of it waiting for memory).
    ranks: Box<[u64]>,
    mask: usize,
    len: usize,
    max_len: usize,
    hand: usize,
    // Keyed per process: an attacker who picks addresses cannot aim them at one probe run.
    keys: [u64; 3],
    evictions: u64,
}

/// An address as the table keys it: IPv4-mapped IPv6, in four words.
pub(crate) fn key_of(ip: IpAddr) -> [u32; 4] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let o = v6.octets();
    std::array::from_fn(|i| {
        u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

/// Three random keys for `fold_mul` hashing, new in every process (the last one odd).
pub(crate) fn process_keys() -> [u64; 3] {
    let seed = RandomState::new();
    [
        seed.hash_one(0u8),
        seed.hash_one(1u8),
        seed.hash_one(2u8) | 1,
    ]
}

/// The 128-bit product of `a` and `b`, its halves XORed: every bit of each input reaches the
/// low bits.
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A hasher for the maps of addresses (the networks a replay printed, the known hosts): a
/// folded multiplication keyed per process, as the penalty table hashes, so that input
/// cannot be made to collide. With SipHash the replay's lookup was a twentieth of replaying
/// a scan of one-off attackers.
#[derive(Clone)]
pub struct FoldState([u64; 2]);

impl FoldState {
    pub fn new() -> FoldState {
        let [k0, _, k2] = process_keys();
        FoldState([k0, k2])
    }
}

impl std::hash::BuildHasher for FoldState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.0[0], self.0[1])
    }
}

pub struct FoldHasher(u64, u64);

impl std::hash::Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = fold_mul(self.0 ^ u64::from_le_bytes(word), self.1);
        }
    }

    fn finish(&self) -> u64 {
        fold_mul(self.0, self.1)
    }
}

impl Default for FoldState {
    fn default() -> FoldState {
        FoldState::new()
    }
}

fn stamp(now: u64) -> u32 {
    now.saturating_add(1).min(u64::from(u32::MAX)) as u32
}

impl PenaltyTable {
    /// Room for `hosts` hosts; the slot array is the next power of two at or above 4/3 of that,
    /// so probe runs stay short.
    pub fn new(hosts: usize) -> PenaltyTable {
        let hosts = hosts.max(1);
        let slots = (hosts + hosts / 3 + 1).next_power_of_two();
        PenaltyTable {
            slots: vec![Slot::default(); slots].into_boxed_slice(),
            ranks: vec![0; slots].into_boxed_slice(),
            mask: slots - 1,
            len: 0,
            max_len: hosts.min(slots - 1),
            hand: 0,
            keys: process_keys(),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most hosts held at once.
    pub fn capacity(&self) -> usize {
        self.max_len
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Two folded multiplications with the process's random keys (as foldhash and aHash
    /// hash integers): SipHash, the standard library's, was a fifth of the table's cost,
    /// and with a key the attacker cannot read, addresses cannot be aimed at one run.
    fn home(&self, key: &[u32; 4]) -> usize {
        let hi = (u64::from(key[0]) << 32) | u64::from(key[1]);
        let lo = (u64::from(key[2]) << 32) | u64::from(key[3]);
        let h = fold_mul(lo ^ self.keys[0], hi ^ self.keys[1]);
        (fold_mul(h, self.keys[2]) as usize) & self.mask
    }

    /// Slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: &[u32; 4]) -> (usize, bool) {
        let mut i = self.home(key);
        loop {
            if self.ranks[i] == 0 {
                return (i, false);
            }
            if self.slots[i].key == *key {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Every tracked address with its host, in slot order (for `status`: a scan of the
    /// fixed array, no allocation).
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, Host)> + '_ {
        let occupied = self.slots.iter().zip(self.ranks.iter());
        occupied.filter(|(_, r)| **r != 0).map(|(s, _)| {
            let mut o = [0u8; 16];
            for (i, w) in s.key.iter().enumerate() {
                o[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
            }
            (std::net::Ipv6Addr::from(o).to_canonical(), s.host())
        })
    }

    /// Penalty and last-seen time of `ip`, if tracked.
    pub fn get(&self, ip: IpAddr) -> Option<(u32, u64)> {
        let (i, found) = self.find(&key_of(ip));
        found.then(|| (self.slots[i].penalty, u64::from(self.ranks[i] as u32 - 1)))
    }

    /// Stores `penalty` for `ip`, scored and seen at `now`.
    pub fn set(&mut self, ip: IpAddr, penalty: u32, now: u64) {
        self.put(
            ip,
            Host {
                penalty,
                scored: now,
                ..Host::default()
            },
            now,
        );
    }

    /// What is remembered of `ip`, if anything.
    pub fn host(&self, ip: IpAddr) -> Option<Host> {
        self.entry(ip).1
    }

    /// Where `ip` is or would go, and what is remembered of it: for one `put_entry`,
    /// `touch_entry` or `remove_entry` with nothing else changing the table in between, so
    /// that an event costs one probe, not two.
    #[inline]
    pub fn entry(&self, ip: IpAddr) -> (Entry, Option<Host>) {
        let key = key_of(ip);
        let (i, found) = self.find(&key);
        (Entry { key, i, found }, found.then(|| self.slots[i].host()))
    }

    /// Marks `ip` as seen at `now` (it is evicted last), changing nothing else.
    pub fn touch(&mut self, ip: IpAddr, now: u64) {
        let e = self.entry(ip).0;
        self.touch_entry(&e, now);
    }

    pub fn touch_entry(&mut self, e: &Entry, now: u64) {
        if e.found {
            self.ranks[e.i] = rank(&self.slots[e.i], stamp(now));
        }
    }

    /// Stores `host` for `ip`, seen at `now`, evicting another host if the table is full.
    pub fn put(&mut self, ip: IpAddr, host: Host, now: u64) {
        let e = self.entry(ip).0;
        self.put_entry(e, host, now);
    }

    pub fn put_entry(&mut self, e: Entry, host: Host, now: u64) {
        let mut i = e.i;
        if !e.found {
            if self.len >= self.max_len {
                // Eviction moves hosts about: where the key goes is looked up again.
                self.evict_one();
                i = self.find(&e.key).0;
            }
            self.len += 1;
        }
        self.slots[i] = Slot {
            key: e.key,
            penalty: host.penalty,
            scored: stamp(host.scored),
            acct: host.acct,
            acct_penalty: host.acct_penalty,
            ok_accts: host.ok_accts,
            events: host.events,
            sess: host.sess,
            sess_penalty: host.sess_penalty,
            strong: host.strong,
        };
        self.ranks[i] = rank(&self.slots[i], stamp(now));
    }

    pub fn remove(&mut self, ip: IpAddr) -> bool {
        let e = self.entry(ip).0;
        self.remove_entry(e)
    }

    pub fn remove_entry(&mut self, e: Entry) -> bool {
        if e.found {
            self.remove_at(e.i);
        }
        e.found
    }

    /// Backward-shift deletion: pulls later members of the probe run into the hole, so that
    /// lookups never need tombstones.
    fn remove_at(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            if self.ranks[j] == 0 {
                break;
            }
            let s = self.slots[j];
            let home = self.home(&s.key);
            // Move s into the hole unless its home lies cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                self.ranks[hole] = self.ranks[j];
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.ranks[hole] = 0;
        self.len -= 1;
    }

    /// A clock hand walks the slots; among the next `EVICTION_SAMPLE` hosts or more the least valuable
    /// goes: a host no account ever logged in from before one that did (a phone's memory of
    /// its login keeps its keepalives free), then the lowest penalty (a guesser one step
    /// from a ban outlives any amount of one-off noise), then the least recently seen.
    /// Decay is not looked at: a decayed host keeps its rank until it is seen again.
    fn evict_one(&mut self) {
        // Empty slots rank 0: one less wraps them to the largest, so a host is always the
        // smallest, and the inner loop has no branch to mispredict (whether a slot is taken
        // is a coin toss at the table's load). Whole windows until enough hosts were seen.
        let mut best = (u64::MAX, self.hand);
        let mut hosts = 0;
        while hosts < EVICTION_SAMPLE {
            let start = self.hand;
            for k in 0..EVICTION_WINDOW.min(self.ranks.len()) {
                let i = (start + k) & self.mask;
                let r = self.ranks[i].wrapping_sub(1);
                hosts += usize::from(r != u64::MAX);
                if r < best.0 {
                    best = (r, i);
                }
            }
            self.hand = (start + EVICTION_WINDOW) & self.mask;
            // A table smaller than the sample has been seen whole.
            if self.ranks.len() <= EVICTION_WINDOW {
                break;
            }
        }
        self.remove_at(best.1);
        self.evictions += 1;
    }

    /// Memory held by the slot array and the ranks, for the counters.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + std::mem::size_of_val(&*self.ranks)
    }
}
#[cfg(test)]
mod tests;
