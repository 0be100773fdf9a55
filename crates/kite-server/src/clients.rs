//! The token endpoint's view of its clients, cached: looking a client up in the database costs more
//! than the rest of a token request bar the signature. Entries live a few seconds; this replica
//! forgets them at once whenever it changes a client, and other replicas' changes show within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kite_core::directory::{Application, Principal, PrincipalKind};
use kite_store::Store;
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(5);

/// A client: its principal, and for apps the registration holding its credentials.
pub struct Client {
    pub principal: Principal,
    pub app: Option<Application>,
}

#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<Uuid, (Instant, Arc<Client>)>>,
}

impl ClientCache {
    /// The client with this client id, or `None` when there is none.
    pub async fn get(&self, store: &dyn Store, app_id: &Uuid) -> kite_store::Result<Option<Arc<Client>>> {
        if let Some((at, c)) = self.entries.lock().ok().and_then(|e| e.get(app_id).cloned()) {
            if at.elapsed() < TTL {
                return Ok(Some(c));
            }
        }
        let id = app_id.to_string();
        let Some(principal) = store.find_principals(&id).await?.into_iter().find(|p| p.app_id == *app_id) else { return Ok(None) };
        let app = match principal.service_principal_type {
            PrincipalKind::Application => match store.get_application(app_id).await {
                Ok(a) => Some(a),
                Err(kite_store::Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
            PrincipalKind::ManagedIdentity => None,
        };
        let client = Arc::new(Client { principal, app });
        if let Ok(mut e) = self.entries.lock() {
            e.insert(*app_id, (Instant::now(), client.clone()));
        }
        Ok(Some(client))
    }

    /// Drops every entry; called after this replica changes any client or its credentials.
    pub fn forget_all(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }
}
