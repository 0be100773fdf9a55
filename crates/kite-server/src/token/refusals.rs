//! The last refused federated assertion per credential, kept for the credential's owner. The
//! caller of the token endpoint may be anyone and is told only what its assertion presented; the
//! owner sees why it missed (a trailing slash, the expected audience) in
//! `kite ad app federated-credential list` and `kite identity federated-credential list|show`.
//! Per replica and in memory (the log has every refusal); bounded.

use std::num::NonZeroUsize;

use kite_core::federation::FederationDenial;
use parking_lot::{Mutex, MutexGuard};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// Credentials whose last refusal is remembered; the least recently refused are forgotten first.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

type Key = (Uuid, String);

pub struct FederationRefusals(Mutex<lru::LruCache<Key, Value>>);

impl Default for FederationRefusals {
    fn default() -> Self {
        FederationRefusals(Mutex::new(lru::LruCache::new(CAPACITY)))
    }
}

impl FederationRefusals {
    fn entries(&self) -> MutexGuard<'_, lru::LruCache<Key, Value>> {
        self.0.lock()
    }

    /// Remembers the refusal on every credential it came close to (`client` owns them).
    pub fn record(&self, client: Uuid, denial: &FederationDenial, at: OffsetDateTime) {
        let time = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let entry = json!({"time": time, "error": format!("AADSTS{}", denial.code), "reason": denial.detail});
        let mut entries = self.entries();
        for name in &denial.near {
            entries.put((client, name.to_lowercase()), entry.clone());
        }
    }

    /// The last refusal of `client`'s credential `name`, as `list` and `show` render it.
    pub fn last(&self, client: Uuid, name: &str) -> Value {
        self.entries().peek(&(client, name.to_lowercase())).cloned().unwrap_or(Value::Null)
    }
}
