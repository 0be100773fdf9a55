//! The token endpoint's view of its clients, cached: looking a client up in the database costs more
//! than the rest of a token request bar the signature. Whenever a replica changes a client it
//! announces it (PostgreSQL NOTIFY), and every replica forgets its entries on the notice; the few
//! seconds' TTL is only the fallback should a notice be lost.
//! At most [`CAPACITY`] clients are held, least recently used out first.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kite_core::directory::{Application, Principal, PrincipalKind};
use kite_store::Store;
use parking_lot::{Mutex, MutexGuard};
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(5);
/// Enough for every client of a large tenant; only clients that exist are ever cached.
pub const CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// A client: its principal, and for apps the registration holding its credentials.
pub struct Client {
    pub principal: Principal,
    pub app: Option<Application>,
}

pub struct ClientCache {
    entries: Mutex<lru::LruCache<Uuid, (Instant, Arc<Client>)>>,
}

impl Default for ClientCache {
    fn default() -> Self {
        ClientCache { entries: Mutex::new(lru::LruCache::new(CAPACITY)) }
    }
}

impl ClientCache {
    fn entries(&self) -> MutexGuard<'_, lru::LruCache<Uuid, (Instant, Arc<Client>)>> {
        self.entries.lock()
    }

    /// The client with this client id, or `None` when there is none.
    pub async fn get(&self, store: &dyn Store, app_id: &Uuid) -> kite_store::Result<Option<Arc<Client>>> {
        let cached = self.entries().get(app_id).cloned();
        if let Some((at, c)) = cached {
            if at.elapsed() < TTL {
                return Ok(Some(c));
            }
        }
        let id = app_id.to_string();
        let Some(principal) = store.find_principals(&id).await?.into_iter().find(|p| p.app_id == *app_id) else {
            return Ok(None);
        };
        let app = match principal.service_principal_type {
            PrincipalKind::Application => match store.get_application(app_id).await {
                Ok(a) => Some(a),
                Err(kite_store::Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
            PrincipalKind::ManagedIdentity => None,
        };
        let client = Arc::new(Client { principal, app });
        self.entries().put(*app_id, (Instant::now(), client.clone()));
        Ok(Some(client))
    }

    /// Drops every entry (another replica changed a client).
    pub fn forget_all(&self) {
        self.entries().clear();
    }

    /// After this replica changed a client or its credentials: forgets here at once, and tells the
    /// other replicas. A lost announcement leaves them the TTL.
    pub async fn changed(&self, store: &dyn Store) {
        self.forget_all();
        if let Err(e) = store.announce(kite_store::Change::Clients).await {
            tracing::warn!("other replicas were not told of a client change (they notice within {TTL:?}): {e}");
        }
    }
}
