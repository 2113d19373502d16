//! A hash map for per-message state whose growth never stalls its owner for long.
//!
//! A `HashMap` grows by rehashing every entry at once. For state kept per message (SIP
//! server transactions held for Timer J, dedupe records) the map holds tens or hundreds
//! of thousands of entries, and each doubling moved all of them while every message
//! behind it waited: in the P1 benchmark the delivery delays showed 50-170 ms stalls at
//! exactly 7/8 of 2^14, 2^15 and 2^16 messages. [`ShardedMap`] splits the entries over
//! [`SHARDS`] maps by key hash, so a growth step moves a 64th of them.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};

/// Number of shards.
pub const SHARDS: usize = 64;

/// A map split over [`SHARDS`] `HashMap`s by the hash of the key.
#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    pick: RandomState,
    shards: Vec<HashMap<K, V>>,
    len: usize,
}

impl<K: Hash + Eq, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        ShardedMap {
            pick: RandomState::new(),
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
            len: 0,
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, k: &Q) -> usize {
        (self.pick.hash_one(k) >> 32) as usize % SHARDS
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards[self.shard(k)].get(k)
    }

    /// The value of `k`, mutable.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.shard(k);
        self.shards[i].get_mut(k)
    }

    /// True if `k` has a value.
    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// Sets the value of `k`; returns the one it replaced.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let i = self.shard(&k);
        let old = self.shards[i].insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `k`; returns its value.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.shard(k);
        let old = self.shards[i].remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for s in &mut self.shards {
            s.clear();
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Behaves like one HashMap under any sequence of inserts and removes.
        #[test]
        fn agrees_with_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u16..300, any::<u32>()), 0..600)) {
            let mut m = ShardedMap::new();
            let mut h = HashMap::new();
            for (ins, k, v) in ops {
                if ins {
                    prop_assert_eq!(m.insert(k, v), h.insert(k, v));
                } else {
                    prop_assert_eq!(m.remove(&k), h.remove(&k));
                }
                prop_assert_eq!(m.len(), h.len());
            }
            for (k, v) in &h {
                prop_assert_eq!(m.get(k), Some(v));
            }
            let mut all: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
            all.sort();
            let mut want: Vec<_> = h.into_iter().collect();
            want.sort();
            prop_assert_eq!(all, want);
            m.clear();
            prop_assert!(m.is_empty());
        }
    }

    #[test]
    fn entries_spread_over_the_shards() {
        let mut m = ShardedMap::new();
        for i in 0..64_000u32 {
            m.insert(i, ());
        }
        assert!(m.shards.iter().all(|s| s.len() > 500 && s.len() < 1500));
        assert!(m.contains_key(&63_999));
        assert!(!m.contains_key(&64_000));
    }
}
