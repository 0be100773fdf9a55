//! Kubernetes webhooks: `POST /authorize` answers SubjectAccessReviews with kite-k8s's RBAC engine
//! over RBAC YAML the server re-reads as it changes. A file that stops parsing is refused and
//! the last good objects stay in force (a typo must not lock a cluster out).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_k8s::k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use kite_k8s::RbacSnapshot;

use crate::state::AppState;

pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// What the Kubernetes webhooks decide with.
#[derive(Default)]
pub struct K8sPolicy {
    pub rbac_paths: Vec<PathBuf>,
    rbac: RwLock<Option<Arc<RbacSnapshot>>>,
}

impl K8sPolicy {
    pub fn new(rbac_paths: Vec<PathBuf>) -> anyhow::Result<K8sPolicy> {
        let policy = K8sPolicy { rbac_paths, ..Default::default() };
        if !policy.rbac_paths.is_empty() {
            // A bad file at start-up is a configuration error worth stopping for.
            let snap = RbacSnapshot::load(&policy.rbac_paths).map_err(|e| anyhow::anyhow!("--k8s-rbac: {e}"))?;
            policy.set_rbac(snap);
        }
        Ok(policy)
    }

    fn set_rbac(&self, snap: RbacSnapshot) {
        if let Ok(mut r) = self.rbac.write() {
            *r = Some(Arc::new(snap));
        }
    }

    pub fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.rbac.read().ok().and_then(|r| r.clone())
    }

    /// Re-reads the RBAC files; on error keeps what it had and says why.
    pub fn reload(&self) {
        if self.rbac_paths.is_empty() {
            return;
        }
        match RbacSnapshot::load(&self.rbac_paths) {
            Ok(snap) => self.set_rbac(snap),
            Err(e) => tracing::warn!("RBAC objects not reloaded, the last good ones stay in force: {e}"),
        }
    }
}

pub fn spawn_reloader(policy: Arc<K8sPolicy>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        loop {
            tick.tick().await;
            policy.reload();
        }
    });
}

/// The authorization webhook (`authorization.k8s.io/v1` SubjectAccessReview in, the same out with status).
pub async fn authorize(State(state): State<AppState>, Json(sar): Json<SubjectAccessReview>) -> Response {
    match state.k8s.rbac() {
        Some(snap) => {
            let answered = kite_k8s::review(&snap, sar);
            if let Some(status) = &answered.status {
                tracing::info!(allowed = status.allowed, reason = status.reason.as_deref().unwrap_or(""), "subject access review");
            }
            Json(answered).into_response()
        }
        None => {
            let mut sar = sar;
            sar.status = Some(SubjectAccessReviewStatus {
                allowed: false,
                reason: Some("kite has no Kubernetes RBAC objects loaded: start it with --k8s-rbac PATH".into()),
                ..Default::default()
            });
            (StatusCode::OK, Json(sar)).into_response()
        }
    }
}
