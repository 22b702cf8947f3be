//! [`ShardedMap`]: a hash map split into shards behind `Arc`s, so a table with one entry changed
//! shares every other shard with the table it was made from.
//!
//! The route table is immutable once in service and swapped whole on a change. Copying a map of
//! thousands of paths for each changed route would make a change cost as much as the table; a
//! copy of this one costs a pointer per shard, and changing an entry copies one shard of a few dozen
//! entries. A lookup hashes the key once more to find its shard, skipped while there is one shard.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::Map;

/// Entries a shard holds on average before the map doubles its shards.
const SHARD_ENTRIES: usize = 32;

/// A hash map in shards, each shared between the maps copied from one another until changed.
#[derive(Debug)]
pub(crate) struct ShardedMap<K, V> {
    /// A power of two of them.
    shards: Box<[Arc<Map<K, V>>]>,
    len: usize,
}

impl<K, V> Clone for ShardedMap<K, V> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: Box::new([Arc::default()]),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        // The high half: the shard's own table indexes by the low bits of the same hash.
        (FxBuildHasher.hash_one(key) >> 32) as usize & (self.shards.len() - 1)
    }

    /// The value at `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value, in no particular order.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    /// The value at `key`, made with `V::default()` when absent, to change in place. Only its shard
    /// is copied, and only when shared.
    pub(crate) fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if self.get(&key).is_none() {
            self.len += 1;
            if self.len > self.shards.len() * SHARD_ENTRIES * 2 {
                self.reshard(self.shards.len() * 2);
            }
        }
        let shard = self.shard_of(&key);
        Arc::make_mut(&mut self.shards[shard])
            .entry(key)
            .or_default()
    }

    /// The value at `key`, to change in place, when present.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).get_mut(key)
    }

    /// Removes `key`'s entry.
    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        if self.shards[shard].contains_key(key) {
            Arc::make_mut(&mut self.shards[shard]).remove(key);
            self.len -= 1;
        }
    }

    /// Spreads the entries over `count` shards: as many as the map has grown to need, so a shard
    /// stays small whatever the map's size.
    fn reshard(&mut self, count: usize) {
        let mut shards: Vec<Map<K, V>> = (0..count).map(|_| Map::default()).collect();
        for shard in self.shards.iter() {
            for (key, value) in shard.iter() {
                let index = (FxBuildHasher.hash_one(key) >> 32) as usize & (count - 1);
                shards[index].insert(key.clone(), value.clone());
            }
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_its_shards_until_one_changes() {
        let mut map: ShardedMap<String, usize> = ShardedMap::default();
        for i in 0..1000 {
            *map.entry_or_default(format!("k{i}")) = i;
        }
        assert_eq!(map.len(), 1000);
        assert!(map.shards.len() >= 8, "{} shards", map.shards.len());
        let mut copy = map.clone();
        *copy.get_mut("k5").unwrap() = 5000;
        copy.remove("k6");
        copy.remove("absent");
        let shared = map
            .shards
            .iter()
            .zip(copy.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= map.shards.len() - 2, "{shared} shared");
        assert_eq!(map.get("k5"), Some(&5));
        assert_eq!(copy.get("k5"), Some(&5000));
        assert_eq!(map.get("k6"), Some(&6));
        assert_eq!(copy.get("k6"), None);
        assert_eq!(copy.len(), 999);
        for i in (0..1000).filter(|&i| i != 5 && i != 6) {
            assert_eq!(copy.get(format!("k{i}").as_str()), Some(&i));
        }
        assert_eq!(copy.values().count(), 999);
    }
}
