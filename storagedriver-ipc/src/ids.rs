//! Maps keyed by request id, as both sides keep their calls and streams: a hasher made for
//! ids, and giving room back after a burst.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// A map from request id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A set of request ids.
pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// Hashes a request id with one multiplication (Fibonacci hashing), which spreads ids handed
/// out in sequence over the whole table, in a few cycles where the default hasher takes tens
/// of nanoseconds per lookup: every call looks its id up several times.
///
/// Not resistant to chosen keys, and need not be: the peer that picks the ids only slows its
/// own connection.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Shrinks a map that removals left mostly empty: a map never gives memory back by itself, and
/// a connection that once had many streams open should not keep their room.
pub(crate) fn shrink_map<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_sequence_hash_apart_and_maps_give_room_back() {
        let hash = |id: u64| {
            let mut h = IdHasher::default();
            id.hash(&mut h);
            h.finish()
        };
        // The low bits pick the bucket, the high 7 the tag: both differ between neighbours.
        for id in 1..1000u64 {
            assert_ne!(hash(id) & 0x3ff, hash(id + 1) & 0x3ff, "id {id}");
            assert_ne!(hash(id) >> 57, hash(id + 1) >> 57, "id {id}");
        }
        let mut map: IdMap<u64> = IdMap::default();
        for id in 0..10_000 {
            map.insert(id, id);
        }
        map.retain(|&id, _| id < 10);
        shrink_map(&mut map);
        assert!(map.capacity() < 1000, "capacity {}", map.capacity());
        assert_eq!(map.get(&7), Some(&7));
    }
}
