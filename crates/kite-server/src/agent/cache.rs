//! The node agent's token cache: per (identity, resource) until five minutes before the token
//! expires, so a busy pod costs one signature an hour; bounded, least recently used first out.

use std::collections::HashSet;
use std::num::NonZeroUsize;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;

/// A token answer as the pod receives it, serialised once when it is minted: a cache hit hands out
/// the same bytes rather than copying and re-encoding a JSON tree per request.
#[derive(Clone, Debug)]
pub struct TokenJson(Bytes);

impl TokenJson {
    pub fn new(answer: &Value) -> TokenJson {
        TokenJson(serde_json::to_vec(answer).unwrap_or_default().into())
    }
}

impl IntoResponse for TokenJson {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// (client ID, resource, digest of a type 1 identity's client secret).
pub type CacheKey = (String, String, Option<String>);

/// Pods one token remembers having been given; past this, every further pod is new each time.
const POD_MEMORY: usize = 256;

/// A cached token: its `expires_on`, the answer, and the pods it was given to (so the audit trail
/// holds each pod's token once, not once per cache hit).
struct Entry {
    expires_on: i64,
    body: TokenJson,
    given_to: HashSet<String>,
}

/// Tokens the agent minted, by key. Bounded: a pod asking for endless distinct resources evicts
/// its own oldest entries instead of growing the agent.
pub struct TokenCache(Mutex<lru::LruCache<CacheKey, Entry>>);

impl TokenCache {
    pub fn new(size: NonZeroUsize) -> TokenCache {
        TokenCache(Mutex::new(lru::LruCache::new(size)))
    }

    /// The token's `expires_on` and answer, and whether `pod` gets it for the first time.
    pub fn get(&self, key: &CacheKey, pod: &str) -> Option<(i64, TokenJson, bool)> {
        let mut cache = self.lock();
        let entry = cache.get_mut(key)?;
        let first = !entry.given_to.contains(pod);
        if first && entry.given_to.len() < POD_MEMORY {
            entry.given_to.insert(pod.to_string());
        }
        Some((entry.expires_on, entry.body.clone(), first))
    }

    /// Stores a token minted for `pod`; returns whether another entry had to go, and how many
    /// entries there now are.
    pub fn insert(&self, key: CacheKey, (expires_on, body): (i64, TokenJson), pod: &str) -> (bool, usize) {
        let mut cache = self.lock();
        let entry = Entry { expires_on, body, given_to: HashSet::from([pod.to_string()]) };
        let evicted = cache.push(key.clone(), entry).is_some_and(|(old, _)| old != key);
        (evicted, cache.len())
    }

    fn lock(&self) -> MutexGuard<'_, lru::LruCache<CacheKey, Entry>> {
        self.0.lock()
    }
}

/// `--imds-cache-size`'s default: a few megabytes of tokens, far more than a node's pods use.
pub const DEFAULT_CACHE_SIZE: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();
