//! What every handler shares.

use std::sync::Arc;

use kite_core::directory::{Subscription, Tenant};
use kite_store::Store;
use kite_token::KeySet;
use parking_lot::RwLock;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::infra::clock::Clock;
use crate::infra::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: Arc<RwLock<Arc<KeySet>>>,
    pub tenant: Tenant,
    pub subscriptions: Vec<Subscription>,
    /// How clients reach this server, e.g. `https://127.0.0.1:8443`; issuers and endpoints derive from it.
    pub public_url: String,
    pub token_lifetime_secs: i64,
    /// Keys of external issuers trusted through federated credentials.
    pub issuers: Arc<crate::token::issuers::IssuerKeys>,
    pub key_retire_grace_secs: i64,
    /// Token-endpoint client lookups; handlers that change clients call `clients.changed(store)`.
    pub clients: Arc<crate::token::clients::ClientCache>,
    /// Kubernetes policy for the webhooks.
    pub k8s: Arc<crate::webhooks::policy::K8sPolicy>,
    /// STS session issuer, loaded on first use.
    pub sts_issuer: Arc<tokio::sync::OnceCell<Arc<kite_core::aws::SessionIssuer>>>,
    /// The pod identity directory (`--pod-identity-dir`), re-read as it changes.
    pub pod_files: Arc<crate::infra::cluster::PodFiles>,
    /// The node agent's tokens, by identity and resource.
    pub imds_cache: Arc<crate::agent::cache::TokenCache>,
    /// Standard mode serves a pod only once its AzureAssignedIdentity is Assigned.
    pub pod_identity_mode: kite_k8s::podidentity::mic::ControllerMode,
    /// Pods, RBAC and aws-auth as the node agent and webhooks see them: files or a live cluster.
    pub cluster: Arc<dyn kite_k8s::ClusterSource>,
    /// The EKS cluster's service-account issuer, for the container-credentials endpoint.
    pub cluster_issuer: Option<String>,
    pub agent_account: Option<crate::agent::nodes::AgentAccount>,
    pub metrics: Arc<crate::infra::metrics::Metrics>,
    /// Failed client authentications per (client, source address), for the token endpoint's brake.
    pub auth_throttle: Arc<crate::token::throttle::AuthThrottle>,
    /// The node's IMDS, for excepted pods and the IMDS paths the agent does not answer.
    pub upstream_imds: Arc<crate::agent::upstream::UpstreamImds>,
    /// Why federated assertions last missed each credential, for its owner.
    pub refusals: Arc<crate::token::refusals::FederationRefusals>,
    /// The webhooks are served on their own listener (client certificates required), not the main one.
    pub webhooks_on_own_listener: bool,
    /// What the workload identity webhook tells pods.
    pub workload_identity: Arc<kite_k8s::workload_identity::Settings>,
    pub clock: Clock,
    /// The audit trail's queue (its writer runs in the background).
    pub audit: Arc<crate::audit::AuditTrail>,
    /// Where vaults are reached (`https://NAME.vault.<domain>/`).
    pub vault: Arc<crate::vault::VaultDomain>,
}

/// Lets `/metrics` and the request counter take the metrics alone.
impl axum::extract::FromRef<AppState> for Arc<crate::infra::metrics::Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// Audiences kite's management API accepts: Azure's management resource IDs (so unmodified Azure
/// SDK clients pointed at kite work) and kite's own URL.
pub const MANAGEMENT_AUDIENCES: [&str; 4] =
    ["https://management.azure.com/", "https://management.azure.com", "https://management.core.windows.net/", "https://management.core.windows.net"];

impl AppState {
    /// The time, for a request's edge to read once and pass down.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().clone()
    }

    pub fn issuer_v2(&self) -> String {
        format!("{}/{}/v2.0", self.public_url, self.tenant.tenant_id)
    }

    pub fn issuer_v1(&self) -> String {
        format!("{}/{}/", self.public_url, self.tenant.tenant_id)
    }

    /// The subscription named in a path, which must be one of this tenant's.
    pub fn subscription(&self, id: &str) -> ApiResult<Uuid> {
        let parsed = Uuid::parse_str(id).ok().filter(|u| self.subscriptions.iter().any(|s| s.subscription_id == *u));
        parsed.ok_or_else(|| {
            ApiError::not_found(
                "SubscriptionNotFound",
                format!(
                    "The subscription '{id}' could not be found. This tenant's subscriptions: {}",
                    self.subscriptions.iter().map(|s| s.subscription_id.to_string()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// The tenant's AWS-shaped account ID: 12 digits derived from the tenant ID, so every replica
    /// agrees without storing it.
    pub fn aws_account(&self) -> String {
        format!("{:012}", self.tenant.tenant_id.as_u128() % 1_000_000_000_000)
    }

    pub fn default_subscription(&self) -> Uuid {
        self.subscriptions.first().map(|s| s.subscription_id).unwrap_or_default()
    }
}
