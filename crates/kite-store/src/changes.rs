//! Change announcements between replicas: what each replica caches (the token endpoint's clients,
//! the signing keys) must not outlive a change another replica made. On PostgreSQL an announcement
//! is a `NOTIFY` on a channel of the store's own schema, heard by every replica's `LISTEN`; on SQLite
//! (one process) it goes straight to this process's subscribers.

use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::broadcast;

use crate::{Error, Result};

/// What changed, as far as caches are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A client, its credentials or its principal.
    Clients,
    SigningKeys,
    /// The notification connection dropped: announcements may have been missed, so whatever is
    /// cached must be checked again (though, while the database is away, it is all there is).
    Missed,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Clients => "clients",
            Change::SigningKeys => "signing-keys",
            Change::Missed => "missed",
        }
    }

    fn parse(s: &str) -> Option<Change> {
        [Change::Clients, Change::SigningKeys].into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Clone)]
pub(crate) struct Changes {
    tx: broadcast::Sender<Change>,
    /// PostgreSQL: the NOTIFY channel; `None` on SQLite.
    channel: Option<String>,
}

impl Changes {
    /// Starts listening on PostgreSQL (a connection of its own, reconnecting as sqlx's listener does).
    pub(crate) async fn start(url: &str, pool: &AnyPool) -> Result<Changes> {
        let (tx, _) = broadcast::channel(64);
        if url.starts_with("sqlite:") {
            return Ok(Changes { tx, channel: None });
        }
        // NOTIFY channels are per database; the schema names the store (tests share one database).
        let schema: String = sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)").fetch_one(pool).await.map_err(|e| Error::Backend(e.to_string()))?;
        let channel = format!("kite_changes_{schema}");
        let mut listener = sqlx::postgres::PgListener::connect(url).await.map_err(|e| Error::Backend(format!("listening for changes: {e}")))?;
        listener.listen(&channel).await.map_err(|e| Error::Backend(format!("listening for changes: {e}")))?;
        let heard = tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notice)) => {
                        if let Some(change) = Change::parse(notice.payload()) {
                            let _ = heard.send(change);
                        }
                    }
                    // The connection dropped (sqlx reconnects on the next call): what was announced
                    // meanwhile is lost, so everything cached is stale.
                    Ok(None) => {
                        tracing::warn!("the change notification connection to PostgreSQL dropped; cached clients and keys are checked again");
                        let _ = heard.send(Change::Missed);
                    }
                    Err(e) => {
                        tracing::warn!("listening for changes from other replicas: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Changes { tx, channel: Some(channel) })
    }

    pub(crate) async fn announce(&self, pool: &AnyPool, change: Change) -> Result<()> {
        match &self.channel {
            Some(channel) => {
                sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(change.as_str()).execute(pool).await.map_err(|e| Error::Backend(e.to_string()))?;
            }
            None => {
                let _ = self.tx.send(change);
            }
        }
        Ok(())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
