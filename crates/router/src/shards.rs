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

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// One shard: a table of entries, shared until changed.
type Shard<K, V> = Arc<HashTable<(K, V)>>;

/// Entries a shard holds on average before the map doubles its shards.
const SHARD_ENTRIES: usize = 32;

/// A hash map in shards, each shared between the maps copied from one another until changed.
///
/// Keys are hashed once per lookup: the high half of the hash picks the shard, and the shard's
/// table, which takes the hash as given, indexes by the low bits.
#[derive(Debug)]
pub(crate) struct ShardedMap<K, V> {
    /// A power of two of them.
    shards: Box<[Shard<K, V>]>,
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
            shards: Box::new([Arc::new(HashTable::new())]),
            len: 0,
        }
    }
}

/// Fx, not SipHash: the keys come from the configuration and a client only looks them up, so it
/// cannot fill a bucket; and a lookup runs for every request.
fn hash<Q: Hash + ?Sized>(key: &Q) -> u64 {
    FxBuildHasher.hash_one(key)
}

fn shard_index(hash: u64, shards: usize) -> usize {
    (hash >> 32) as usize & (shards - 1)
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The value at `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash(key);
        self.shards[shard_index(hash, self.shards.len())]
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, value)| value)
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
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(_, value)| value))
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    /// The value at `key`, made with `V::default()` when absent, to change in place. Only its shard
    /// is copied, and only when shared.
    pub(crate) fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let hash = hash(&key);
        if self.get(&key).is_none() {
            self.len += 1;
            if self.len > self.shards.len() * SHARD_ENTRIES * 2 {
                self.reshard(self.shards.len() * 2);
            }
        }
        let shard = shard_index(hash, self.shards.len());
        let table = Arc::make_mut(&mut self.shards[shard]);
        match table.find_entry(hash, |(k, _)| *k == key) {
            Ok(found) => &mut found.into_mut().1,
            Err(absent) => {
                &mut absent
                    .into_table()
                    .insert_unique(hash, (key, V::default()), |(k, _)| self::hash(k))
                    .into_mut()
                    .1
            }
        }
    }

    /// The value at `key`, to change in place, when present.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash(key);
        let shard = shard_index(hash, self.shards.len());
        self.shards[shard].find(hash, |(k, _)| k.borrow() == key)?;
        Arc::make_mut(&mut self.shards[shard])
            .find_mut(hash, |(k, _)| k.borrow() == key)
            .map(|(_, value)| value)
    }

    /// Removes `key`'s entry.
    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash(key);
        let shard = shard_index(hash, self.shards.len());
        if self.shards[shard]
            .find(hash, |(k, _)| k.borrow() == key)
            .is_none()
        {
            return;
        }
        if let Ok(found) =
            Arc::make_mut(&mut self.shards[shard]).find_entry(hash, |(k, _)| k.borrow() == key)
        {
            found.remove();
            self.len -= 1;
        }
    }

    /// Spreads the entries over `count` shards: as many as the map has grown to need, so a shard
    /// stays small whatever the map's size.
    fn reshard(&mut self, count: usize) {
        let mut shards: Vec<HashTable<(K, V)>> = (0..count).map(|_| HashTable::new()).collect();
        for shard in self.shards.iter() {
            for (key, value) in shard.iter() {
                let hash = hash(key);
                shards[shard_index(hash, count)].insert_unique(
                    hash,
                    (key.clone(), value.clone()),
                    |(k, _)| self::hash(k),
                );
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
