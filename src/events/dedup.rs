//! Counting each `event_id` once without remembering every id ever seen.
//!
//! Ids are kept as 64-bit hashes in buckets of one hour of *event* time and forgotten once the
//! stream's newest event time has moved a full horizon past their bucket. A redelivered event
//! carries its original timestamp, so it finds its bucket while the bucket can still matter; one
//! arriving later than the horizon is older than any open window and is refused downstream as
//! late. Memory is therefore bounded by the event rate times the horizon, not by stream length.
//! At 100M ids, 64-bit hashes collide with probability ~3e-4 per horizon-full (birthday bound),
//! which loses one event in the worst case; 128 bits would double memory for no practical gain.

use std::collections::BTreeMap;
use std::hash::Hasher;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::timestamp::{MICROS_PER_HOUR, Timestamp};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EventIdDedup {
    horizon_micros: i64,
    newest: i64,
    buckets: BTreeMap<i64, IdSet>,
}

impl EventIdDedup {
    pub fn new(horizon_hours: f64) -> Self {
        Self {
            horizon_micros: (horizon_hours.max(0.0) * MICROS_PER_HOUR as f64) as i64,
            newest: i64::MIN,
            buckets: BTreeMap::new(),
        }
    }

    /// Returns `true` the first time an id is seen (within the horizon).
    pub fn first_sighting(&mut self, event_id: &str, ts: Timestamp) -> bool {
        self.first_sighting_of(Self::hash(event_id), ts)
    }

    pub fn hash(event_id: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
    }

    /// Starts loading the memory where `first_sighting_of(hash, ts)` will look, so that a caller
    /// with a run of events can overlap the cache misses instead of taking them one by one.
    pub fn prefetch(&self, hash: u64, ts: Timestamp) {
        let bucket = ts.as_micros().div_euclid(MICROS_PER_HOUR);
        if let Some(ids) = self.buckets.get(&bucket) {
            ids.prefetch(hash);
        }
    }

    /// `first_sighting` with the id's `hash` already computed.
    pub fn first_sighting_of(&mut self, hash: u64, ts: Timestamp) -> bool {
        let micros = ts.as_micros();
        let bucket = micros.div_euclid(MICROS_PER_HOUR);
        // A new hour at the front sees about as many ids as the one before it: sized once, it
        // never rehashes millions of ids while it fills.
        let capacity = match self.buckets.last_key_value() {
            Some((&last, ids)) if bucket > last => ids.len(),
            _ => 0,
        };
        let fresh = self
            .buckets
            .entry(bucket)
            .or_insert_with(|| IdSet::with_capacity(capacity))
            .insert(hash);
        if micros > self.newest {
            self.newest = micros;
            self.evict();
        }
        fresh
    }

    pub fn remembered(&self) -> usize {
        self.buckets.values().map(IdSet::len).sum()
    }

    fn evict(&mut self) {
        let keep_from = (self.newest - self.horizon_micros).div_euclid(MICROS_PER_HOUR);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= keep_from {
                break;
            }
            entry.remove();
        }
    }
}

/// A set of 64-bit id hashes, one word per slot with linear probing: a probe is one cache miss
/// where a general hash set takes two (its control bytes and its slots live apart), and the
/// event-id memory, tens of millions of ids at Picsart scale, misses on nearly every event.
/// Nothing is ever removed (whole hours are dropped), so there are no tombstones. Slot value 0
/// means empty: a hash of 0 is stored as 1, which merges two of 2^64 values. The slot comes
/// from the hash times a secret odd number (its high bits), so ids crafted to share low hash
/// bits cannot pile up in one run of slots.
#[derive(Debug, Clone)]
struct IdSet {
    slots: Vec<u64>,
    len: usize,
    shift: u32,
    secret: u64,
}

impl IdSet {
    /// Grows past 5/8 full: linear probing's probe lengths stay short below that.
    fn with_capacity(ids: usize) -> Self {
        use std::hash::BuildHasher;
        let secret = std::collections::hash_map::RandomState::new().hash_one(ids) | 1;
        Self::sized(ids, secret)
    }

    fn sized(ids: usize, secret: u64) -> Self {
        let slots = (ids * 8 / 5 + 1).next_power_of_two().max(16);
        Self {
            slots: vec![0; slots],
            len: 0,
            shift: 64 - slots.trailing_zeros(),
            secret,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn slot_of(&self, key: u64) -> usize {
        (key.wrapping_mul(self.secret) >> self.shift) as usize
    }

    fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self.slots.get(self.slot_of(hash.max(1))) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: SSE is part of every x86_64 target, and a prefetch is only a hint (it
            // never faults and writes nothing); the pointer is a live element anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const u64).cast()) };
        }
    }

    /// `true` when the hash was not in the set.
    fn insert(&mut self, hash: u64) -> bool {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        let key = hash.max(1);
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(key);
        loop {
            match self.slots[at] {
                0 => {
                    self.slots[at] = key;
                    self.len += 1;
                    return true;
                }
                k if k == key => return false,
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::sized(self.slots.len().max(8), self.secret));
        for key in old.slots.into_iter().filter(|&k| k != 0) {
            self.insert(key);
        }
    }
}

/// Snapshots hold the ids, not the empty slots.
impl Serialize for IdSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.slots.iter().filter(|&&k| k != 0))
    }
}

impl<'de> Deserialize<'de> for IdSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let keys = Vec::<u64>::deserialize(deserializer)?;
        let mut set = IdSet::with_capacity(keys.len());
        for key in keys {
            set.insert(key);
        }
        Ok(set)
    }
}

/// The keys are already xxh3 hashes; hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64 ^ (value >> 64) as u64;
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_micros(1_800_000_000_000_000 + hours * MICROS_PER_HOUR)
    }

    #[test]
    fn counts_an_id_once_and_forgets_it_past_the_horizon() {
        let mut dedup = EventIdDedup::new(2.0);
        assert!(dedup.first_sighting("e1", at(0)));
        assert!(!dedup.first_sighting("e1", at(0)));
        assert!(dedup.first_sighting("e2", at(1)));
        assert!(
            !dedup.first_sighting("e1", at(0)),
            "still inside the horizon"
        );
        assert!(dedup.first_sighting("e3", at(5)));
        assert_eq!(dedup.remembered(), 1, "hours 0 and 1 are evicted");
    }

    #[test]
    fn the_id_set_grows_without_losing_or_repeating_an_id() {
        let mut set = IdSet::with_capacity(0);
        for round in 0..2 {
            for i in 0..3_000u64 {
                // Clustered low bits and a zero hash: the probing must still find every id.
                let hash = (i << 40) | (i % 3);
                assert_eq!(set.insert(hash), round == 0, "id {i}, round {round}");
            }
        }
        assert_eq!(set.len(), 3_000);
        assert!(set.insert(u64::MAX) && !set.insert(u64::MAX));
        let bytes = rmp_serde::to_vec(&set).unwrap();
        let mut back: IdSet = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.len(), 3_001);
        assert!(!back.insert(5 << 40 | 2));
    }
}
