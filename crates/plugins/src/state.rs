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

type States = HashMap<String, Arc<dyn Any + Send + Sync>>;

/// States by scope, then by key, carried from one snapshot to the next.
///
/// A scope's states sit behind an `Arc`, so a build that keeps most routes as they were starts from
/// a copy of the whole store at the cost of a pointer per scope, and lets go of the scopes of the
/// routes it builds again.
#[derive(Default, Clone)]
pub struct StateStore {
    scopes: HashMap<Arc<str>, Arc<States>>,
}

impl StateStore {
    /// An empty store (the first snapshot's).
    pub fn new() -> Self {
        Self::default()
    }

    /// The state at `key` (`<scope>|<rest>`) in `self` or else in `previous` when there is one of
    /// type `T`, else a new one from `make`; recorded in `self` either way.
    pub(crate) fn carry<T: Any + Send + Sync>(
        &mut self,
        previous: &StateStore,
        key: String,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let scope = key.split_once('|').map_or(key.as_str(), |(scope, _)| scope);
        let existing = self
            .get(scope, &key)
            .or_else(|| previous.get(scope, &key))
            .and_then(|any| any.downcast::<T>().ok());
        let state = existing.unwrap_or_else(|| Arc::new(make()));
        let states = match self.scopes.get_mut(scope) {
            Some(states) => states,
            None => self.scopes.entry(scope.into()).or_default(),
        };
        Arc::make_mut(states).insert(key, state.clone());
        state
    }

    fn get(&self, scope: &str, key: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.scopes.get(scope)?.get(key).cloned()
    }

    /// Lets go of every state of `scope` (`route:<id>`): the route is gone, or built again, and
    /// what its new plugins still want is carried over from the previous store.
    pub(crate) fn forget_scope(&mut self, scope: &str) {
        self.scopes.remove(scope);
    }

    /// How many states the store holds.
    pub fn len(&self) -> usize {
        self.scopes.values().map(|states| states.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.scopes.values().all(|states| states.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_same_key_carries_its_state_and_a_new_key_starts_fresh() {
        let mut first = StateStore::new();
        let counter = first.carry(&StateStore::new(), "route:a|x".into(), || AtomicU64::new(0));
        counter.fetch_add(5, Ordering::Relaxed);
        let mut second = StateStore::new();
        let again = second.carry(&first, "route:a|x".into(), || AtomicU64::new(0));
        assert_eq!(again.load(Ordering::Relaxed), 5);
        let other = second.carry(&first, "route:a|y".into(), || AtomicU64::new(0));
        assert_eq!(other.load(Ordering::Relaxed), 0);
        assert_eq!(second.len(), 2);
        // A copy keeps what it was copied with; a scope forgotten is carried again from before.
        let mut third = second.clone();
        third.forget_scope("route:a");
        assert!(third.is_empty());
        let carried = third.carry(&second, "route:a|x".into(), || AtomicU64::new(0));
        assert_eq!(carried.load(Ordering::Relaxed), 5);
        assert_eq!(third.len(), 1);
    }
}
