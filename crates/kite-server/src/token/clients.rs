//! The token endpoint's view of its clients, cached: looking a client up in the database costs more
//! than the rest of a token request bar the signature. Whenever a replica changes a client it
//! announces it (PostgreSQL NOTIFY), and every replica forgets its entries on the notice; the few
//! seconds' TTL is only the fallback should a notice be lost.
//! At most [`CAPACITY`] clients are held, least recently used out first.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kite_core::directory::{Application, Principal, PrincipalKind};
use kite_store::Store;
use parking_lot::{Mutex, MutexGuard};
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(5);
/// While the database is unreachable, a client looked up within this long keeps being served: the
/// token endpoint keeps working through a database failover for the clients it has seen.
pub const STALE_WHILE_UNAVAILABLE: Duration = Duration::from_secs(600);
/// Enough for every client of a large tenant; only clients that exist are ever cached.
pub const CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// A client: its principal, and for apps the registration holding its credentials.
pub struct Client {
    pub principal: Principal,
    pub app: Option<Application>,
}

/// A cached client: when it was read, and in which generation (entries of an older one are stale).
type Entry = (Instant, u64, Arc<Client>);

pub struct ClientCache {
    entries: Mutex<lru::LruCache<Uuid, Entry>>,
    generation: AtomicU64,
}

impl Default for ClientCache {
    fn default() -> Self {
        ClientCache { entries: Mutex::new(lru::LruCache::new(CAPACITY)), generation: AtomicU64::new(0) }
    }
}

impl ClientCache {
    fn entries(&self) -> MutexGuard<'_, lru::LruCache<Uuid, Entry>> {
        self.entries.lock()
    }

    /// The client with this client id, or `None` when there is none.
    pub async fn get(&self, store: &dyn Store, app_id: &Uuid) -> kite_store::Result<Option<Arc<Client>>> {
        let cached = self.entries().get(app_id).cloned();
        if let Some((at, generation, c)) = &cached {
            if at.elapsed() < TTL && *generation == self.generation.load(Ordering::Acquire) {
                return Ok(Some(c.clone()));
            }
        }
        match self.load(store, app_id).await {
            Err(kite_store::Error::Unavailable(m)) => match cached.filter(|(at, _, _)| at.elapsed() < STALE_WHILE_UNAVAILABLE) {
                Some((_, _, c)) => {
                    tracing::warn!(client = %app_id, "the database is unreachable; answering from the client as last read: {m}");
                    Ok(Some(c))
                }
                None => Err(kite_store::Error::Unavailable(m)),
            },
            loaded => loaded,
        }
    }

    async fn load(&self, store: &dyn Store, app_id: &Uuid) -> kite_store::Result<Option<Arc<Client>>> {
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
        self.entries().put(*app_id, (Instant::now(), self.generation.load(Ordering::Acquire), client.clone()));
        Ok(Some(client))
    }

    /// Drops every entry (a replica changed a client).
    pub fn forget_all(&self) {
        self.entries().clear();
    }

    /// Makes every entry stale: read again from the store, served only while it is unreachable
    /// (announcements may have been missed, but nothing is known to have changed).
    pub fn expire_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
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
