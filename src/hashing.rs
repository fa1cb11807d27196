//! Hash maps for the hot paths. std's SipHash costs more than the rest of an event's
//! aggregation; xxh3 is several times faster, and a per-process random seed keeps the
//! resistance to crafted keys (ids come from outside) that a fixed seed would lose.

use std::collections::HashMap;
use std::hash::BuildHasher;

use xxhash_rust::xxh3::Xxh3Builder;

pub type FastMap<K, V> = HashMap<K, V, Xxh3Builder>;

pub fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(seeded())
}

fn seeded() -> Xxh3Builder {
    let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
    Xxh3Builder::new().with_seed(seed)
}
