//! Counting each `event_id` once without remembering every id ever seen.
//!
//! Ids are kept as 64-bit hashes in buckets of one hour of *event* time and forgotten once the
//! stream's newest event time has moved a full horizon past their bucket. A redelivered event
//! carries its original timestamp, so it finds its bucket while the bucket can still matter; one
//! arriving later than the horizon is older than any open window and is refused downstream as
//! late. Memory is therefore bounded by the event rate times the horizon, not by stream length.
//! At 100M ids, 64-bit hashes collide with probability ~3e-4 per horizon-full (birthday bound),
//! which loses one event in the worst case; 128 bits would double memory for no practical gain.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::timestamp::{MICROS_PER_HOUR, Timestamp};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EventIdDedup {
    horizon_micros: i64,
    newest: i64,
    buckets: BTreeMap<i64, HashSet<u64, BuildHasherDefault<PrehashedHasher>>>,
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
        let micros = ts.as_micros();
        let bucket = micros.div_euclid(MICROS_PER_HOUR);
        let hash = xxhash_rust::xxh3::xxh3_64(event_id.as_bytes());
        let fresh = self.buckets.entry(bucket).or_default().insert(hash);
        if micros > self.newest {
            self.newest = micros;
            self.evict();
        }
        fresh
    }

    pub fn remembered(&self) -> usize {
        self.buckets.values().map(HashSet::len).sum()
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
}
