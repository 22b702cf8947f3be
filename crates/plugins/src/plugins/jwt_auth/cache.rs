//! The per-worker cache of verified tokens: a token seen again is not verified again until it
//! expires or its plugin's key set changes. Its time claims are checked again on every hit, as
//! Envoy's `jwt_authn` does, so a cached token is accepted exactly while the validator would accept it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rustc_hash::FxHasher;

use super::numeric_date::Lifetime;
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

/// A plugin instance and a seeded 64-bit hash of a token. The entry holds the token itself and a hit
/// compares it whole, so a token whose hash collides with a verified one is a miss, never a pass;
/// the hash only finds the entry. A cryptographic digest would cost more than the rest of a cached
/// request (measured: about 6,800 instructions for SHA-256 of a 250-byte token, against about 60
/// for this hash and the comparison).
pub type CacheKey = (u64, u64);

/// The key of `token` for plugin instance `instance`. The hash is seeded per worker with random
/// bits, so which tokens share a bucket cannot be worked out from outside.
pub fn key_of(instance: u64, token: &[u8]) -> CacheKey {
    (
        instance,
        xxhash_rust::xxh3::xxh3_64_with_seed(token, SEED.with(|s| *s)),
    )
}

struct Entry {
    /// The token the entry is for, compared on every hit.
    token: Box<[u8]>,
    generation: u64,
    /// The seconds it is valid in, `nbf` and `exp` with the leeway.
    lifetime: Lifetime,
    verified: Arc<Verified>,
}

/// A bounded map of verified tokens.
pub struct TokenCache {
    // The keys are already seeded hashes: hashing them again with SipHash would buy nothing.
    entries: HashMap<CacheKey, Entry, BuildHasherDefault<FxHasher>>,
    capacity: usize,
}

impl TokenCache {
    /// An empty cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::default(),
            capacity,
        }
    }

    /// The entry of `token` at `key` verified under key set `generation`, if the token is valid at
    /// `now`.
    pub fn get(
        &mut self,
        key: &CacheKey,
        token: &[u8],
        generation: u64,
        now: u64,
    ) -> Option<Arc<Verified>> {
        let entry = self.entries.get(key)?;
        if *entry.token != *token {
            // Another token with the same hash: not this one's entry.
            return None;
        }
        if entry.generation != generation || !entry.lifetime.holds(now) {
            // Verified again, the token gets the answer and the reason the validator gives it.
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
        token: &[u8],
        generation: u64,
        lifetime: Lifetime,
        verified: Arc<Verified>,
        now: u64,
    ) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| e.lifetime.expires.is_none_or(|x| now <= x));
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
                    token: token.into(),
                    generation,
                    lifetime,
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
    static SEED: u64 = std::collections::hash_map::RandomState::new().hash_one(0x6a77_7473u64);
}

/// The calling worker's cached entry for `token` at `key`.
pub fn lookup(key: &CacheKey, token: &[u8], generation: u64, now: u64) -> Option<Arc<Verified>> {
    CACHE.with(|c| c.borrow_mut().get(key, token, generation, now))
}

/// Records a verified token in the calling worker's cache.
pub fn remember(
    key: CacheKey,
    token: &[u8],
    generation: u64,
    lifetime: Lifetime,
    verified: Arc<Verified>,
    now: u64,
) {
    CACHE.with(|c| {
        c.borrow_mut()
            .insert(key, token, generation, lifetime, verified, now)
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
        (1, u64::from(n))
    }

    const T: &[u8] = b"token";

    fn until(expires: Option<u64>) -> Lifetime {
        Lifetime {
            not_before: None,
            expires,
        }
    }

    #[test]
    fn entries_honour_expiry_and_generation() {
        let mut cache = TokenCache::new(4);
        cache.insert(key(1), T, 7, until(Some(100)), verified(), 50);
        assert!(cache.get(&key(1), T, 7, 100).is_some());
        assert!(cache.get(&key(1), T, 7, 101).is_none(), "expired");
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key(2), T, 7, until(None), verified(), 50);
        assert!(cache.get(&key(2), T, 8, 50).is_none(), "another key set");
        assert!(
            cache.get(&(2, key(2).1), T, 7, 50).is_none(),
            "another instance"
        );
    }

    #[test]
    fn a_hit_outside_the_tokens_lifetime_is_a_miss() {
        let mut cache = TokenCache::new(4);
        let window = Lifetime {
            not_before: Some(40),
            expires: Some(60),
        };
        cache.insert(key(1), T, 1, window, verified(), 50);
        assert!(cache.get(&key(1), T, 1, 39).is_none(), "not yet valid");
        cache.insert(key(1), T, 1, window, verified(), 50);
        assert!(cache.get(&key(1), T, 1, 40).is_some());
        assert!(cache.get(&key(1), T, 1, 60).is_some());
        assert!(cache.get(&key(1), T, 1, 61).is_none(), "expired");
    }

    #[test]
    fn a_colliding_token_is_a_miss_never_a_pass() {
        let mut cache = TokenCache::new(4);
        cache.insert(key(1), b"verified", 1, until(None), verified(), 0);
        assert!(cache.get(&key(1), b"verified", 1, 0).is_some());
        assert!(cache.get(&key(1), b"forged", 1, 0).is_none());
        assert!(
            cache.get(&key(1), b"verified", 1, 0).is_some(),
            "still there"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_sweeps_expired_entries_first() {
        let mut cache = TokenCache::new(64);
        for n in 0..64 {
            cache.insert(
                key(n),
                T,
                1,
                until(Some(if n == 5 { 10 } else { 1000 })),
                verified(),
                0,
            );
        }
        assert_eq!(cache.len(), 64);
        cache.insert(key(100), T, 1, until(Some(1000)), verified(), 20);
        assert_eq!(cache.len(), 64, "the expired entry made room");
        assert!(cache.get(&key(100), T, 1, 20).is_some());
        for n in 200..1200 {
            cache.insert(key(n), T, 1, until(Some(1000)), verified(), 20);
            assert!(cache.len() <= 64);
        }
        assert!(
            cache.get(&key(1199), T, 1, 20).is_some(),
            "the newest entry is kept"
        );
    }
}
