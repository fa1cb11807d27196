//! Hash maps for the hot paths. std's SipHash costs more than the rest of an event's
//! aggregation; xxh3 is several times faster, and a per-process random seed keeps the
//! resistance to crafted keys (ids come from outside) that a fixed seed would lose.
//!
//! Keys are hashed one piece at a time with the one-shot xxh3, each piece seeded with what came
//! before: xxh3's streaming hasher (what `Xxh3Builder` gives) sets up a state of several hundred
//! bytes for every key, which cost more than hashing the short ids themselves.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use xxhash_rust::xxh3::xxh3_64_with_seed;

pub type FastMap<K, V> = HashMap<K, V, SeededXxh3>;

pub type FastSet<K> = HashSet<K, SeededXxh3>;

pub fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(SeededXxh3::random())
}

pub fn fast_set<K>() -> FastSet<K> {
    HashSet::with_hasher(SeededXxh3::random())
}

/// Builds [`PieceHasher`]s that start from a seed drawn once per map.
#[derive(Debug, Clone, Copy)]
pub struct SeededXxh3 {
    seed: u64,
}

impl SeededXxh3 {
    fn random() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self { seed }
    }
}

/// A fresh random seed too: maps restored from a snapshot, or inside a derived `Default`, are
/// built by it.
impl Default for SeededXxh3 {
    fn default() -> Self {
        Self::random()
    }
}

impl BuildHasher for SeededXxh3 {
    type Hasher = PieceHasher;

    fn build_hasher(&self) -> PieceHasher {
        PieceHasher { state: self.seed }
    }
}

pub struct PieceHasher {
    state: u64,
}

/// 2^64 / φ: an odd multiplier that spreads consecutive integers over the whole word.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for PieceHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxh3_64_with_seed(bytes, self.state);
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.state = (self.state ^ value).wrapping_mul(SPREAD).rotate_left(31);
    }

    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    /// The table takes its bucket from the low bits and its tag from the top seven: the last
    /// integer piece must reach both (murmur3's finaliser).
    fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_only_in_how_they_split_hash_apart() {
        let build = SeededXxh3 { seed: 7 };
        let a = build.hash_one(("ab".to_owned(), "c".to_owned()));
        let b = build.hash_one(("a".to_owned(), "bc".to_owned()));
        assert_ne!(a, b);
        assert_eq!(a, build.hash_one(("ab".to_owned(), "c".to_owned())));
    }

    #[test]
    fn the_seed_changes_every_hash() {
        let (one, two) = (SeededXxh3 { seed: 1 }, SeededXxh3 { seed: 2 });
        for key in ["", "img-1", "a much longer image identifier than most"] {
            assert_ne!(one.hash_one(key), two.hash_one(key));
        }
        assert_ne!(one.hash_one(5u128), two.hash_one(5u128));
    }

    #[test]
    fn consecutive_integers_fill_the_buckets_evenly() {
        let build = SeededXxh3 { seed: 3 };
        let mut buckets = [0u32; 64];
        for i in 0..64_000u64 {
            buckets[(build.hash_one(i) & 63) as usize] += 1;
        }
        // 1,000 expected in each; a hash that left the low bits alone would fill one bucket.
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
    }
}
