//! The probes: `/healthz` answers while the process serves; `/readyz` once the store answers and
//! the cluster source has read the cluster. Both are unauthenticated (kubelet calls them), so a
//! failure says in a few words which part is not ready and nothing more; the detail goes to the log.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use crate::infra::state::AppState;

/// A store slower than this counts as not answering.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match ready(&state).await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Why this replica should not get traffic yet, if it should not.
async fn ready(state: &AppState) -> Result<(), &'static str> {
    match tokio::time::timeout(STORE_TIMEOUT, state.store.tenant()).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => {
            tracing::warn!("not ready: the store holds no tenant (was the database replaced?)");
            return Err("store not ready");
        }
        Ok(Err(e)) => {
            tracing::warn!("not ready: the store does not answer: {e}");
            return Err("store not ready");
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer within {STORE_TIMEOUT:?}");
            return Err("store not ready");
        }
    }
    if !state.cluster.ready() {
        return Err("cluster not yet listed");
    }
    Ok(())
}
