//! The per-worker cache of verified tokens: a token seen again is not verified again until it
//! expires or its plugin's key set changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::consumer::Consumer;

/// Entries one worker keeps, all plugin instances together.
pub const MAX_ENTRIES: usize = 10_000;

/// What a verified token grants, as the request path applies it.
#[derive(Debug)]
pub struct Verified {
    /// The consumer the token names.
    pub consumer: Option<Arc<Consumer>>,
    /// The fields made of its claims (`forward_claims`).
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
}

/// A plugin instance and the SHA-256 of a token: a digest, so the cache holds no tokens and a
/// colliding token cannot be made.
pub type CacheKey = (u64, [u8; 32]);

struct Entry {
    generation: u64,
    /// Unix seconds after which the token is expired (its `exp` plus the leeway); `None`: never.
    expires: Option<u64>,
    verified: Arc<Verified>,
}

/// A bounded map of verified tokens.
pub struct TokenCache {
    entries: HashMap<CacheKey, Entry>,
    capacity: usize,
}

impl TokenCache {
    /// An empty cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The entry of `key` verified under key set `generation`, if it is not expired at `now`.
    pub fn get(&mut self, key: &CacheKey, generation: u64, now: u64) -> Option<Arc<Verified>> {
        let entry = self.entries.get(key)?;
        if entry.generation != generation || entry.expires.is_some_and(|e| now > e) {
            self.entries.remove(key);
            return None;
        }
        Some(entry.verified.clone())
    }

    /// Records a verified token; when full, expired entries go first, then an arbitrary sixteenth
    /// of the rest, so a full cache is swept once per many inserts rather than at each.
    pub fn insert(
        &mut self,
        key: CacheKey,
        generation: u64,
        expires: Option<u64>,
        verified: Arc<Verified>,
        now: u64,
    ) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| e.expires.is_none_or(|x| now <= x));
            if self.entries.len() >= self.capacity {
                let excess = (self.capacity / 16).max(1);
                let victims: Vec<CacheKey> = self.entries.keys().take(excess).copied().collect();
                for victim in victims {
                    self.entries.remove(&victim);
                }
            }
        }
        if self.capacity > 0 {
            self.entries.insert(
                key,
                Entry {
                    generation,
                    expires,
                    verified,
                },
            );
        }
    }

    /// How many entries it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

thread_local! {
    // A worker is a thread: its cache needs no lock.
    static CACHE: RefCell<TokenCache> = RefCell::new(TokenCache::new(MAX_ENTRIES));
}

/// The calling worker's cached entry for `key`.
pub fn lookup(key: &CacheKey, generation: u64, now: u64) -> Option<Arc<Verified>> {
    CACHE.with(|c| c.borrow_mut().get(key, generation, now))
}

/// Records a verified token in the calling worker's cache.
pub fn remember(
    key: CacheKey,
    generation: u64,
    expires: Option<u64>,
    verified: Arc<Verified>,
    now: u64,
) {
    CACHE.with(|c| {
        c.borrow_mut()
            .insert(key, generation, expires, verified, now)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Arc<Verified> {
        Arc::new(Verified {
            consumer: None,
            forwarded: Vec::new(),
        })
    }

    fn key(n: u32) -> CacheKey {
        let mut digest = [0; 32];
        digest[..4].copy_from_slice(&n.to_be_bytes());
        (1, digest)
    }

    #[test]
    fn entries_honour_expiry_and_generation() {
        let mut cache = TokenCache::new(4);
        cache.insert(key(1), 7, Some(100), verified(), 50);
        assert!(cache.get(&key(1), 7, 100).is_some());
        assert!(cache.get(&key(1), 7, 101).is_none(), "expired");
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key(2), 7, None, verified(), 50);
        assert!(cache.get(&key(2), 8, 50).is_none(), "another key set");
        assert!(
            cache.get(&(2, key(2).1), 7, 50).is_none(),
            "another instance"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_sweeps_expired_entries_first() {
        let mut cache = TokenCache::new(64);
        for n in 0..64 {
            cache.insert(
                key(n),
                1,
                Some(if n == 5 { 10 } else { 1000 }),
                verified(),
                0,
            );
        }
        assert_eq!(cache.len(), 64);
        cache.insert(key(100), 1, Some(1000), verified(), 20);
        assert_eq!(cache.len(), 64, "the expired entry made room");
        assert!(cache.get(&key(100), 1, 20).is_some());
        for n in 200..1200 {
            cache.insert(key(n), 1, Some(1000), verified(), 20);
            assert!(cache.len() <= 64);
        }
        assert!(
            cache.get(&key(1199), 1, 20).is_some(),
            "the newest entry is kept"
        );
    }
}
