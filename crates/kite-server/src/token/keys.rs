//! Signing-key lifecycle: rotation (asked for through `api::signing_keys`), and on every replica a periodic reload that picks up
//! keys other replicas added and retires keys no unexpired token can need.

use std::sync::Arc;
use std::time::Duration;

use kite_store::StoredKey;
use kite_token::{KeySet, SigningKey};
use time::OffsetDateTime;

use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

/// How often replicas re-read the key list.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::from(kite_store::Error::Backend(e.to_string()))
}

pub async fn stored_keys(state: &AppState) -> ApiResult<Vec<SigningKey>> {
    let stored = state.store.list_signing_keys().await?;
    stored.iter().map(|k| serde_json::from_str::<SigningKey>(&k.body).map_err(internal)).collect()
}

/// Re-reads the keys, deletes retired ones and swaps in the new set. Returns the keys in force.
pub async fn reload(state: &AppState) -> ApiResult<Vec<SigningKey>> {
    let mut keys = stored_keys(state).await?;
    let now = state.now().unix_timestamp();
    for kid in kite_token::retired(&keys, now, state.token_lifetime_secs, state.key_retire_grace_secs) {
        match state.store.delete_signing_key(&kid).await {
            Ok(()) => tracing::info!(%kid, "signing key retired: every token it signed has expired"),
            Err(kite_store::Error::NotFound(_)) => {} // another replica was first
            Err(e) => return Err(e.into()),
        }
        keys.retain(|k| k.kid != kid);
    }
    let set = KeySet::new(&keys).map_err(internal)?;
    *state.keys.write() = Arc::new(set);
    Ok(keys)
}

pub fn spawn_reloader(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = reload(&state).await {
                tracing::warn!("reloading signing keys failed: {}", e.message);
            }
        }
    });
}

/// Acts on what other replicas announce: their client changes empty the client cache, their key
/// rotations reload the keys. Announcements possibly missed make cached clients stale and reload
/// the keys.
pub fn spawn_change_listener(state: AppState) {
    let mut changes = state.store.changes();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let keys = match changes.recv().await {
                Ok(kite_store::Change::Clients) => {
                    state.clients.forget_all();
                    false
                }
                Err(RecvError::Lagged(_)) => {
                    state.clients.forget_all();
                    true
                }
                Ok(kite_store::Change::SigningKeys) => true,
                Ok(kite_store::Change::Missed) => {
                    state.clients.expire_all();
                    true
                }
                Err(RecvError::Closed) => return,
            };
            if keys {
                if let Err(e) = reload(&state).await {
                    tracing::warn!("reloading signing keys after another replica's rotation failed: {}", e.message);
                }
            }
        }
    });
}

/// Adds a key that signs from `now` on; the old ones stay published until they retire. Returns
/// the new key and the keys in force.
pub async fn rotate(state: &AppState, now: OffsetDateTime) -> ApiResult<(SigningKey, Vec<SigningKey>)> {
    // The newest key signs, judged by creation second: a rotation in the same second as the key it
    // replaces must still come out newer.
    let newest = stored_keys(state).await?.iter().map(|k| k.created_at).max().unwrap_or(i64::MIN);
    let key = SigningKey::generate("kite token signing", now.unix_timestamp().max(newest + 1)).map_err(internal)?;
    let body = serde_json::to_string(&key).map_err(internal)?;
    state.store.add_signing_key(&StoredKey { kid: key.kid.clone(), created_at: key.created_at, body }).await?;
    let keys = reload(state).await?;
    // Other replicas verify the new key's tokens as soon as they hear of it, not at their next reload.
    if let Err(e) = state.store.announce(kite_store::Change::SigningKeys).await {
        tracing::warn!("other replicas were not told of the new signing key (they load it within {RELOAD_EVERY:?}): {e}");
    }
    Ok((key, keys))
}
