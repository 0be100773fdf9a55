//! Kubernetes webhooks: `POST /authorize` answers SubjectAccessReviews with kite-k8s's RBAC engine
//! over RBAC YAML; `POST /authenticate` answers TokenReviews for `aws eks get-token` tokens,
//! verified against kite's own STS and mapped through `aws-auth`, and for kite-issued access tokens
//! (see `entra_review`). Both files are re-read as they
//! change; one that stops parsing or validating is refused and the last good one stays in force
//! (a typo must not lock a cluster out, the upstream authenticator's trap).

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::aws::sigv4;
use kite_k8s::awsauth::{self, AccessEntry, AuthenticationMode, AwsAuth, AwsAuthStore};
use kite_k8s::k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use kite_k8s::k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use kite_k8s::RbacSnapshot;
use time::OffsetDateTime;

use crate::infra::state::AppState;
use crate::infra::watch::Watched;

pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// What the Kubernetes webhooks decide with.
#[derive(Default)]
pub struct K8sPolicy {
    pub rbac_paths: Vec<PathBuf>,
    rbac: RwLock<Option<Arc<RbacSnapshot>>>,
    /// The EKS-shaped cluster name tokens must be signed for (`x-k8s-aws-id`).
    pub cluster_id: Option<String>,
    pub aws_auth_path: Option<PathBuf>,
    aws_auth: RwLock<AwsAuthStore>,
    /// Which mappings identify callers, as EKS's `accessConfig.authenticationMode`.
    pub mode: Option<AuthenticationMode>,
    pub access_entries_path: Option<PathBuf>,
    access_entries: RwLock<Vec<AccessEntry>>,
    watched: [Watched; 3],
    /// Kite-issued access tokens, when `--entra-audience` is set.
    pub entra: Option<crate::webhooks::entra_review::EntraReview>,
}

/// Where the webhooks' inputs come from.
pub struct Sources {
    pub rbac: Vec<PathBuf>,
    pub cluster_id: Option<String>,
    pub aws_auth: Option<PathBuf>,
    pub access_entries: Option<PathBuf>,
    pub mode: AuthenticationMode,
    pub entra_audience: Option<String>,
    pub entra_mapping: Option<PathBuf>,
}

fn read_entries(path: &std::path::Path) -> Result<Vec<AccessEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not an access entries file: {e}", path.display()))
}

impl K8sPolicy {
    pub fn new(src: Sources) -> anyhow::Result<K8sPolicy> {
        let policy = K8sPolicy {
            rbac_paths: src.rbac,
            cluster_id: src.cluster_id,
            aws_auth_path: src.aws_auth,
            mode: Some(src.mode),
            access_entries_path: src.access_entries,
            entra: src.entra_audience.map(|aud| crate::webhooks::entra_review::EntraReview::new(aud, src.entra_mapping)).transpose()?,
            ..Default::default()
        };
        if let Some(path) = &policy.access_entries_path {
            let entries = read_entries(path).map_err(|e| anyhow::anyhow!("--access-entries {e}"))?;
            *policy.access_entries.write() = entries;
        }
        // Bad files at start-up are configuration errors worth stopping for.
        if !policy.rbac_paths.is_empty() {
            let snap = RbacSnapshot::load(&policy.rbac_paths).map_err(|e| anyhow::anyhow!("--k8s-rbac: {e}"))?;
            policy.set_rbac(snap);
        }
        if let Some(path) = &policy.aws_auth_path {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--aws-auth {}: {e}", path.display()))?;
            policy.aws_auth.write().apply(&text).map_err(|report| anyhow::anyhow!("--aws-auth {} is refused:\n{report}", path.display()))?;
        }
        Ok(policy)
    }

    pub fn aws_auth(&self) -> AwsAuth {
        self.aws_auth.read().current().clone()
    }

    fn reload_aws_auth(&self) {
        let Some(path) = &self.aws_auth_path else {
            return;
        };
        if !self.watched[0].changed(std::slice::from_ref(path)) {
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return tracing::warn!("aws-auth not reloaded from {}: {e}; the last good mapping stays in force", path.display()),
        };
        let mut store = self.aws_auth.write();
        match store.apply(&text) {
            Ok(report) => tracing::info!(
                warnings = report.warnings.len(),
                "aws-auth reloaded from {}{}",
                path.display(),
                if report.warnings.is_empty() { String::new() } else { format!(":\n{report}") }
            ),
            Err(report) => tracing::warn!("aws-auth in {} refused, the last good mapping stays in force:\n{report}", path.display()),
        }
    }

    fn set_rbac(&self, snap: RbacSnapshot) {
        *self.rbac.write() = Some(Arc::new(snap));
    }

    pub fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.rbac.read().clone()
    }

    fn reload_access_entries(&self) {
        let Some(path) = &self.access_entries_path else {
            return;
        };
        if !self.watched[1].changed(std::slice::from_ref(path)) {
            return;
        }
        match read_entries(path) {
            Ok(entries) => {
                *self.access_entries.write() = entries;
            }
            Err(e) => {
                tracing::warn!("access entries not reloaded, the last good ones stay in force: {e}")
            }
        }
    }

    /// Re-reads the files; on error keeps what it had and says why.
    pub fn reload(&self) {
        self.reload_aws_auth();
        self.reload_access_entries();
        if let Some(entra) = &self.entra {
            entra.reload();
        }
        if self.rbac_paths.is_empty() || !self.watched[2].changed(&self.rbac_paths) {
            return;
        }
        match RbacSnapshot::load(&self.rbac_paths) {
            Ok(snap) => self.set_rbac(snap),
            Err(e) => {
                tracing::warn!("RBAC objects not reloaded, the last good ones stay in force: {e}")
            }
        }
    }
}

pub fn spawn_reloader(policy: Arc<K8sPolicy>) {
    let mut paths = policy.rbac_paths.clone();
    paths.extend(policy.aws_auth_path.iter().chain(&policy.access_entries_path).cloned());
    paths.extend(policy.entra.as_ref().and_then(|e| e.mapping_path()).cloned());
    if !paths.is_empty() {
        crate::infra::watch::spawn(paths, move || policy.reload());
    }
}

/// The authorization webhook (`authorization.k8s.io/v1` SubjectAccessReview in, the same out with status).
pub async fn authorize(State(state): State<AppState>, Json(sar): Json<SubjectAccessReview>) -> Response {
    match state.cluster.rbac() {
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
                reason: Some(
                    "kite has no Kubernetes RBAC objects loaded: start it with --k8s-rbac PATH, or --kubeconfig PATH to read them from the cluster".into(),
                ),
                ..Default::default()
            });
            (StatusCode::OK, Json(sar)).into_response()
        }
    }
}

/// Who a token belongs to, or why it is refused. `aws eks get-token` tokens: the rule that failed,
/// the ARN seen and the closest aws-auth entry (the upstream authenticator answers a bare
/// "Unauthorized"); anything else is taken for a kite-issued access token.
async fn identify(state: &AppState, token: &str, now: OffsetDateTime) -> Result<UserInfo, String> {
    if !token.starts_with(sigv4::EKS_TOKEN_PREFIX) {
        return match &state.k8s.entra {
            Some(entra) => entra.identify(state, token, now).await,
            None => Err(format!(
                "only {}… tokens (aws eks get-token) are accepted here; start kite with --entra-audience AUD to accept kite-issued access tokens",
                sigv4::EKS_TOKEN_PREFIX
            )),
        };
    }
    let cluster = state.k8s.cluster_id.as_deref().ok_or("kite serves no EKS-shaped cluster: start it with --eks-cluster NAME")?;
    let request = sigv4::eks_token_request(token, cluster).map_err(|e| e.to_string())?;
    let ours = state.public_url.split("://").nth(1).unwrap_or_default().to_ascii_lowercase();
    let host = request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.to_ascii_lowercase()).unwrap_or_default();
    if host != ours {
        return Err(format!("the token was presigned for STS at '{host}', not this kite ('{ours}'): set AWS_ENDPOINT_URL_STS={}", state.public_url));
    }
    let caller = crate::token::sts::authenticate(state, &request, now).await.map_err(|e| e.to_string())?;
    let arn = caller.arn().to_string();
    let entries = state.k8s.access_entries.read().clone();
    let mode = state.k8s.mode.unwrap_or(AuthenticationMode::ConfigMap);
    let id =
        awsauth::resolve(mode, &entries, &state.cluster.aws_auth(), &arn, caller.access_key_id(), caller.session_name()).map_err(|miss| miss.to_string())?;
    let extra = [
        ("arn", arn.clone()),
        ("canonicalArn", id.canonical_arn.clone()),
        ("sessionName", caller.session_name().unwrap_or_default().to_string()),
        ("accessKeyId", caller.access_key_id().to_string()),
        ("principalId", caller.user_id()),
    ];
    Ok(UserInfo {
        username: Some(id.username),
        uid: Some(format!("aws-iam-authenticator:{}:{}", caller.arn().account(), caller.stable_id())),
        groups: Some(id.groups),
        extra: Some(extra.into_iter().map(|(k, v)| (k.to_string(), vec![v])).collect()),
    })
}

/// The authentication webhook (`authentication.k8s.io/v1` TokenReview in, the same out with status).
pub async fn authenticate(State(state): State<AppState>, Json(mut review): Json<TokenReview>) -> Json<TokenReview> {
    let token = review.spec.token.clone();
    review.status = Some(match identify(&state, token.trim(), state.now()).await {
        Ok(user) => {
            tracing::info!(username = user.username.as_deref().unwrap_or(""), "token review: authenticated");
            TokenReviewStatus { authenticated: Some(true), user: Some(user), ..Default::default() }
        }
        Err(reason) => {
            tracing::info!("token review refused: {reason}");
            TokenReviewStatus { authenticated: Some(false), error: Some(reason), ..Default::default() }
        }
    });
    Json(review)
}
