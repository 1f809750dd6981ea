//! The verifier's copy of the revocation feed: which sessions and subjects
//! are revoked, held in memory for the hot path.
//!
//! A lookup is one shard's read lock and one probe per id, no I/O and no
//! allocation; writers (the feed follower, once per poll) take one shard's
//! write lock at a time, so a verification never waits behind a whole page.
//! Ids are SHA-256 outputs ([`RevocationId`]), so their first eight bytes are
//! the hash and the shard is picked from the next eight.
//!
//! # Bounded
//!
//! At most `max_entries` entries (sessions plus subjects; the default,
//! 2,000,000, is 50 times the 40,000 live entries expected at 70M users).
//! Refusing new entries when full would silently un-revoke the newest
//! logouts, the ones that matter most. So a full set first drops what has
//! expired in the shard it writes to, then evicts that shard's entries
//! closest to their `until` (1/32 of the shard): those tokens expire soonest
//! anyway, so the exposure is the shortest possible. Every eviction is
//! counted ([`RevocationSet::evicted`], `auth_revocation_evicted_total`) and
//! logged by the follower.
//!
//! # Memory
//!
//! A session entry is 20 bytes (16-byte id, 4-byte `until`), a subject entry
//! 24 (plus `before`), and hashbrown adds one control byte per bucket at a
//! load factor between 7/16 and 7/8. `scripts/bench-revocation.sh` measures
//! the whole process with 1,000,000 entries (docs/bench/revocation.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::revocation::{FeedEvent, RevocationId};

/// The default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 2_000_000;

const SHARDS: usize = 64;

/// The ids one token is checked against, computed once when the token is
/// first verified and kept with it in the verified-token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationIds {
    /// [`RevocationId::session`] of `sid`; `None` for tokens without one
    /// (checked by subject only).
    pub session: Option<RevocationId>,
    /// [`RevocationId::subject`] of `sub`.
    pub subject: RevocationId,
}

impl RevocationIds {
    /// The ids of a token with this `sub` and `sid`.
    pub fn of(sub: &str, sid: Option<&str>) -> Self {
        RevocationIds { session: sid.map(RevocationId::session), subject: RevocationId::subject(sub) }
    }
}

/// Ids are already uniform (SHA-256): their first eight bytes are the hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // [u8; 16] hashes as a length prefix (write_usize, ignored below)
        // and then its bytes: one call with all sixteen.
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
    fn write_usize(&mut self, _: usize) {}
}

type Map<V> = HashMap<[u8; 16], V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Shard {
    /// session id -> until (seconds; saturated to u32, year 2106)
    sessions: Map<u32>,
    /// subject id -> (before, until)
    subjects: Map<(u32, u32)>,
}

impl Shard {
    fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len()
    }

    fn sweep(&mut self, now_s: u32) -> usize {
        let before = self.len();
        self.sessions.retain(|_, until| *until > now_s);
        self.subjects.retain(|_, (_, until)| *until > now_s);
        before - self.len()
    }

    /// Drops about 1/32 of the entries, those closest to expiry.
    fn evict_soonest(&mut self) -> usize {
        let mut untils: Vec<u32> =
            self.sessions.values().copied().chain(self.subjects.values().map(|(_, u)| *u)).collect();
        if untils.is_empty() {
            return 0;
        }
        let k = (untils.len() / 32).max(1) - 1;
        let (_, cut, _) = untils.select_nth_unstable(k);
        let cut = *cut;
        let before = self.len();
        self.sessions.retain(|_, until| *until > cut);
        self.subjects.retain(|_, (_, until)| *until > cut);
        before - self.len()
    }
}

fn secs32(s: u64) -> u32 {
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// Revoked sessions and subjects, bounded, with the time of the last
/// complete listing. Share it in an `Arc`.
pub struct RevocationSet {
    shards: Box<[RwLock<Shard>]>,
    len: AtomicUsize,
    max_entries: usize,
    /// Milliseconds since the epoch (issuer's clock) of the last complete
    /// listing; 0 before the first.
    as_of_ms: AtomicU64,
    evicted: AtomicU64,
    applied: AtomicU64,
}

impl std::fmt::Debug for RevocationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationSet")
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .field("as_of_ms", &self.as_of_ms())
            .finish_non_exhaustive()
    }
}

impl RevocationSet {
    /// An empty set holding at most `max_entries` (at least one per shard).
    pub fn new(max_entries: usize) -> Self {
        RevocationSet {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            len: AtomicUsize::new(0),
            max_entries: max_entries.max(SHARDS),
            as_of_ms: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        }
    }

    fn shard_of(id: &RevocationId) -> usize {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.0[8..16]);
        (u64::from_le_bytes(b) % SHARDS as u64) as usize
    }

    // A poisoned lock only means a writer panicked mid-update; the maps are
    // still valid maps, so keep using them rather than failing every request.
    fn read(&self, i: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[i].read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[i].write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Is a token with these ids, issued at `iat`, revoked? The hot path:
    /// with an empty set one atomic load, otherwise one or two shard reads.
    #[inline]
    pub fn is_revoked(&self, ids: &RevocationIds, iat: u64) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        if let Some(sid) = &ids.session
            && self.read(Self::shard_of(sid)).sessions.contains_key(&sid.0)
        {
            return true;
        }
        let sub = &ids.subject;
        self.read(Self::shard_of(sub)).subjects.get(&sub.0).is_some_and(|(before, _)| iat < u64::from(*before))
    }

    /// Applies one event at `now_s`. An event already past its `until` is
    /// skipped (the tokens it covers have expired). Applying an event again
    /// changes nothing: sessions are a set, subjects keep the latest
    /// `before`. Returns the entries evicted to make room (normally 0).
    pub fn apply(&self, event: &FeedEvent, now_s: u64) -> usize {
        let until = event.until();
        if until <= now_s {
            return 0;
        }
        self.applied.fetch_add(1, Ordering::Relaxed);
        let (id, until) = match event {
            FeedEvent::Session { id, .. } | FeedEvent::Subject { id, .. } => (id, secs32(until)),
        };
        let i = Self::shard_of(id);
        let mut shard = self.write(i);
        let exists = match event {
            FeedEvent::Session { .. } => shard.sessions.contains_key(&id.0),
            FeedEvent::Subject { .. } => shard.subjects.contains_key(&id.0),
        };
        let mut evicted = 0;
        if !exists && self.len.load(Ordering::Relaxed) >= self.max_entries {
            let swept = shard.sweep(secs32(now_s));
            self.len.fetch_sub(swept, Ordering::Relaxed);
            if self.len.load(Ordering::Relaxed) >= self.max_entries {
                evicted = shard.evict_soonest();
                self.len.fetch_sub(evicted, Ordering::Relaxed);
                self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
            }
        }
        let added = match *event {
            FeedEvent::Session { .. } => {
                let slot = shard.sessions.entry(id.0).or_insert(0);
                let added = *slot == 0;
                *slot = (*slot).max(until);
                added
            }
            FeedEvent::Subject { before, .. } => {
                let slot = shard.subjects.entry(id.0).or_insert((0, 0));
                let added = slot.1 == 0;
                slot.0 = slot.0.max(secs32(before));
                slot.1 = slot.1.max(until);
                added
            }
        };
        if added {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    /// Drops every entry whose `until` has passed; returns how many.
    pub fn sweep(&self, now_s: u64) -> usize {
        let mut total = 0;
        for i in 0..SHARDS {
            let swept = self.write(i).sweep(secs32(now_s));
            self.len.fetch_sub(swept, Ordering::Relaxed);
            total += swept;
        }
        total
    }

    /// Entries held (sessions plus subjects).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on entries.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Entries evicted because the set was full, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Events applied (not skipped as expired), since start.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Records a complete listing up to `as_of_ms` (the issuer's clock).
    /// Never moves back.
    pub fn mark_complete(&self, as_of_ms: u64) {
        self.as_of_ms.fetch_max(as_of_ms, Ordering::Release);
    }

    /// The time of the last complete listing; `None` before the first.
    pub fn as_of_ms(&self) -> Option<u64> {
        match self.as_of_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// How far behind the feed this set is at `now_ms`: `None` before the
    /// first complete listing.
    pub fn lag_ms(&self, now_ms: u64) -> Option<u64> {
        self.as_of_ms().map(|as_of| now_ms.saturating_sub(as_of))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, until: u64) -> FeedEvent {
        FeedEvent::Session { id: RevocationId::session(sid), until }
    }

    fn subject(sub: &str, before: u64, until: u64) -> FeedEvent {
        FeedEvent::Subject { id: RevocationId::subject(sub), before, until }
    }

    #[test]
    fn a_revoked_session_revokes_its_tokens_only() {
        let set = RevocationSet::new(1000);
        set.apply(&session("s1", 2000), 1000);
        assert!(set.is_revoked(&RevocationIds::of("u", Some("s1")), 999));
        assert!(!set.is_revoked(&RevocationIds::of("u", Some("s2")), 999), "another session of the same user");
        assert!(!set.is_revoked(&RevocationIds::of("u", None), 999), "no sid: checked by subject only");
    }

    #[test]
    fn a_subject_event_revokes_tokens_issued_before_it() {
        let set = RevocationSet::new(1000);
        set.apply(&subject("u", 1500, 3000), 1000);
        let ids = RevocationIds::of("u", Some("s"));
        assert!(set.is_revoked(&ids, 1499));
        assert!(!set.is_revoked(&ids, 1500), "issued at before: valid");
        assert!(set.is_revoked(&RevocationIds::of("u", None), 1000));
        assert!(!set.is_revoked(&RevocationIds::of("v", None), 1000), "another subject");
        // A later event moves `before` forward, an older one never back.
        set.apply(&subject("u", 1700, 3000), 1000);
        set.apply(&subject("u", 1200, 3000), 1000);
        assert!(set.is_revoked(&ids, 1600));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn sid_and_sub_with_the_same_value_do_not_collide() {
        let set = RevocationSet::new(1000);
        set.apply(&session("x", 2000), 1000);
        assert!(!set.is_revoked(&RevocationIds::of("x", None), 0));
    }

    #[test]
    fn applying_twice_changes_nothing() {
        let set = RevocationSet::new(1000);
        for _ in 0..2 {
            set.apply(&session("s", 2000), 1000);
            set.apply(&subject("u", 1500, 3000), 1000);
        }
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn expired_events_are_skipped_and_swept() {
        let set = RevocationSet::new(1000);
        set.apply(&session("old", 1000), 1000);
        assert_eq!(set.len(), 0, "until <= now: skipped");
        set.apply(&session("a", 1100), 1000);
        set.apply(&subject("u", 1050, 1200), 1000);
        assert_eq!(set.sweep(1150), 1);
        assert_eq!(set.len(), 1);
        assert!(!set.is_revoked(&RevocationIds::of("x", Some("a")), 0));
        assert!(set.is_revoked(&RevocationIds::of("u", None), 1000));
    }

    #[test]
    fn a_full_set_evicts_the_entries_closest_to_expiry() {
        let set = RevocationSet::new(SHARDS * 4);
        let n = SHARDS * 4;
        for i in 0..n {
            set.apply(&session(&format!("s{i}"), 10_000 + i as u64), 1000);
        }
        assert_eq!(set.len(), n);
        // Full: the newest revocation still gets in.
        set.apply(&session("newest", 50_000), 1000);
        assert!(set.is_revoked(&RevocationIds::of("u", Some("newest")), 0));
        assert!(set.len() <= n, "bounded: {}", set.len());
        assert!(set.evicted() >= 1);
        // What went was the soonest to expire in that shard, never a later one.
        let shard = RevocationSet::shard_of(&RevocationId::session("newest"));
        let kept_min = set.read(shard).sessions.values().copied().min().unwrap();
        let evicted_max = (0..n)
            .filter(|i| RevocationSet::shard_of(&RevocationId::session(&format!("s{i}"))) == shard)
            .filter(|i| !set.is_revoked(&RevocationIds::of("u", Some(&format!("s{i}"))), 0))
            .map(|i| 10_000 + i as u32)
            .max()
            .unwrap();
        assert!(evicted_max < kept_min, "evicted {evicted_max}, kept {kept_min}");
        // Expired entries go first: no eviction needed then.
        let set = RevocationSet::new(SHARDS);
        for i in 0..SHARDS * 2 {
            set.apply(&session(&format!("e{i}"), 1001), 1000);
        }
        let evicted = set.evicted();
        set.apply(&session("later", 5000), 2000);
        assert!(set.is_revoked(&RevocationIds::of("u", Some("later")), 0));
        assert!(set.len() <= SHARDS);
        assert_eq!(set.evicted(), evicted, "expired entries made the room");
    }

    #[test]
    fn lag_is_measured_from_the_last_complete_listing() {
        let set = RevocationSet::new(1000);
        assert_eq!(set.lag_ms(5000), None);
        set.mark_complete(4000);
        assert_eq!(set.lag_ms(5000), Some(1000));
        set.mark_complete(3000);
        assert_eq!(set.as_of_ms(), Some(4000), "never moves back");
        assert_eq!(set.lag_ms(3000), Some(0));
    }

    #[test]
    fn parallel_readers_and_a_writer() {
        let set = std::sync::Arc::new(RevocationSet::new(100_000));
        let ids = RevocationIds::of("u", Some("s"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let set = &set;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        let _ = set.is_revoked(&ids, 0);
                    }
                });
            }
            for i in 0..10_000 {
                set.apply(&session(&format!("w{i}"), 5000), 1000);
            }
        });
        assert_eq!(set.len(), 10_000);
    }
}
