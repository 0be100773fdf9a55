//! The node agent's token cache: per (identity, resource) until five minutes before the token
//! expires, so a busy pod costs one signature an hour; bounded, least recently used first out.

use std::num::NonZeroUsize;

use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;

/// (client ID, resource, digest of a type 1 identity's client secret).
pub type CacheKey = (String, String, Option<String>);

/// Tokens the agent minted, by key, with their `expires_on`. Bounded: a pod asking for endless
/// distinct resources evicts its own oldest entries instead of growing the agent.
pub struct TokenCache(Mutex<lru::LruCache<CacheKey, (i64, Value)>>);

impl TokenCache {
    pub fn new(size: NonZeroUsize) -> TokenCache {
        TokenCache(Mutex::new(lru::LruCache::new(size)))
    }

    pub fn get(&self, key: &CacheKey) -> Option<(i64, Value)> {
        self.lock().get(key).cloned()
    }

    /// Stores an entry; returns whether another had to go, and how many entries there now are.
    pub fn insert(&self, key: CacheKey, entry: (i64, Value)) -> (bool, usize) {
        let mut cache = self.lock();
        let evicted = cache.push(key.clone(), entry).is_some_and(|(old, _)| old != key);
        (evicted, cache.len())
    }

    fn lock(&self) -> MutexGuard<'_, lru::LruCache<CacheKey, (i64, Value)>> {
        self.0.lock()
    }
}

/// `--imds-cache-size`'s default: a few megabytes of tokens, far more than a node's pods use.
pub const DEFAULT_CACHE_SIZE: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();
