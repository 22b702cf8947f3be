//! [`StateStore`]: plugin state that outlives a snapshot while its plugin's configuration is unchanged.
//!
//! Rate-limit counters, connection counts and fetched key sets belong to a plugin instance, and an
//! instance is rebuilt with every snapshot. An unrelated edit (another route, an upstream's weight) must
//! not reset anyone's counters, so an instance asks the store for its state by a key made of its scope
//! (global, a route, a consumer), its name and its whole configuration: the same key in the next
//! snapshot gets the same state, a changed configuration gets a fresh one.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// States by key, carried from one snapshot to the next.
#[derive(Default, Clone)]
pub struct StateStore {
    entries: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

impl StateStore {
    /// An empty store (the first snapshot's).
    pub fn new() -> Self {
        Self::default()
    }

    /// The state at `key` in `previous` when there is one of type `T`, else a new one from `make`;
    /// recorded in `self` either way.
    pub(crate) fn carry<T: Any + Send + Sync>(
        &mut self,
        previous: &StateStore,
        key: String,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let existing = self
            .entries
            .get(&key)
            .or_else(|| previous.entries.get(&key))
            .cloned()
            .and_then(|any| any.downcast::<T>().ok());
        let state = existing.unwrap_or_else(|| Arc::new(make()));
        self.entries.insert(key, state.clone());
        state
    }

    /// How many states the store holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_same_key_carries_its_state_and_a_new_key_starts_fresh() {
        let mut first = StateStore::new();
        let counter = first.carry(&StateStore::new(), "a".into(), || AtomicU64::new(0));
        counter.fetch_add(5, Ordering::Relaxed);
        let mut second = StateStore::new();
        let again = second.carry(&first, "a".into(), || AtomicU64::new(0));
        assert_eq!(again.load(Ordering::Relaxed), 5);
        let other = second.carry(&first, "b".into(), || AtomicU64::new(0));
        assert_eq!(other.load(Ordering::Relaxed), 0);
        assert_eq!(second.len(), 2);
    }
}
