//! The node agent's IMDS-compatible endpoint (`GET /metadata/identity/oauth2/token`), answered
//! for pods found by the caller's source IP in the cluster state (a directory of Kubernetes YAML
//! re-read as it changes, or a live cluster's watchers). Type 0 identities are managed identities; type 1 are service
//! principals whose client secret the agent reads from the Secret the identity names. Tokens are
//! cached per (identity, resource) until five minutes before they expire, so a busy pod costs one
//! signature an hour; the cache holds at most `--imds-cache-size` tokens, least recently used first out.

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::digest;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::directory::Principal;
use kite_core::directory::PrincipalKind;
use kite_k8s::podidentity::mic::{require_assigned, ControllerMode};
use kite_k8s::podidentity::spsecret::{client_secret, MissingSecret};
use kite_k8s::podidentity::{decide, decide_on_node, AzureIdentity, ClusterState, PodDecision, Selector};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};

use crate::agent::cache::TokenJson;
use crate::agent::{Agent, Tokens};
use crate::infra::metrics::ImdsError;
use crate::infra::state::AppState;
use crate::token::service::{self, OAuthError};

/// The agent's refusal, in IMDS's error shape. Rendered in one place; its kind rides on the
/// response for the metrics layer to count.
pub struct Refused {
    kind: ImdsError,
    status: StatusCode,
    message: String,
}

impl Refused {
    pub fn new(kind: ImdsError, status: StatusCode, message: impl Into<String>) -> Refused {
        Refused { kind, status, message: message.into() }
    }

    pub fn kind(&self) -> ImdsError {
        self.kind
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": "invalid_request", "error_description": self.message}));
        let mut response = (self.status, body).into_response();
        response.extensions_mut().insert(self.kind);
        response
    }
}

/// What a pod asks IMDS for; `kite agent` passes it on to the server as it came.
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
pub struct ImdsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msi_res_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mi_res_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl ImdsQuery {
    /// The resource asked for, without a `/.default` suffix; IMDS's own error when there is none.
    pub fn resource(&self) -> Result<String, Refused> {
        match self.resource.as_deref().map(|r| r.trim_end_matches("/.default")).filter(|r| !r.is_empty()) {
            Some(r) => Ok(r.to_string()),
            None => Err(Refused::new(ImdsError::MissingResource, StatusCode::BAD_REQUEST, "Required query variable 'resource' is missing")),
        }
    }

    /// The identity named by client ID or resource ID (an object ID needs the directory).
    pub fn selector(&self, client_id: Option<String>) -> Selector {
        Selector {
            client_id: client_id.or(self.client_id.clone()),
            resource_id: self.mi_res_id.clone().or(self.msi_res_id.clone()).or(self.resource_id.clone()),
        }
    }
}

/// IMDS's own answer to a call without `Metadata: true` (which guards against SSRF).
pub fn require_metadata(headers: &HeaderMap) -> Result<(), Refused> {
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    match metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        true => Ok(()),
        false => Err(Refused::new(ImdsError::MissingMetadataHeader, StatusCode::BAD_REQUEST, "Required metadata header not specified")),
    }
}

/// A store failure on the agent's path: logged with a trace id, answered 500 with that id only
/// (503 while the database is unreachable).
fn store_failure(e: kite_store::Error) -> Refused {
    let trace = uuid::Uuid::new_v4();
    if let kite_store::Error::Unavailable(m) = &e {
        tracing::error!(%trace, "node agent: the database is unreachable: {m}");
        return Refused::new(
            ImdsError::Internal,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("kite's database cannot be reached right now (trace id {trace}); retry shortly"),
        );
    }
    tracing::error!(%trace, "node agent: reading the directory failed: {e}");
    Refused::new(ImdsError::Internal, StatusCode::INTERNAL_SERVER_ERROR, format!("kite could not read its directory (trace id {trace}); see kite's log"))
}

/// The client ID of the managed identity whose principal (object) ID is `object_id`.
async fn client_id_of(state: &AppState, object_id: &str) -> Result<String, Refused> {
    let unknown = |m: String| Refused::new(ImdsError::UnknownIdentity, StatusCode::BAD_REQUEST, m);
    let id = object_id.parse::<uuid::Uuid>().map_err(|_| unknown(format!("object_id {object_id:?} is not a GUID")))?;
    match state.store.get_principal(&id).await {
        Ok(p) if p.service_principal_type == PrincipalKind::ManagedIdentity => Ok(p.app_id.to_string()),
        Ok(_) | Err(kite_store::Error::NotFound(_)) => {
            Err(unknown(format!("object_id {object_id} is no managed identity kite knows ('kite identity list' shows principalId)")))
        }
        Err(e) => Err(store_failure(e)),
    }
}

/// The managed identity a type 0 AzureIdentity names.
async fn managed_identity(state: &AppState, namespace: &str, identity: &AzureIdentity) -> Result<Principal, Refused> {
    let found = state.store.find_principals(&identity.spec.client_id).await.map_err(store_failure)?;
    found
        .into_iter()
        .find(|p| p.app_id.to_string().eq_ignore_ascii_case(&identity.spec.client_id) && p.service_principal_type == PrincipalKind::ManagedIdentity)
        .ok_or_else(|| {
            Refused::new(
                ImdsError::UnknownIdentity,
                StatusCode::BAD_REQUEST,
                format!(
                    "AzureIdentity {}/{} names clientID {}, which is no managed identity kite knows ('kite identity list')",
                    namespace, identity.metadata.name, identity.spec.client_id
                ),
            )
        })
}

/// The service principal a type 1 AzureIdentity names, authenticated with the client secret from
/// its Secret exactly as `client_credentials` authenticates it; with the secret's digest.
async fn service_principal(state: &AppState, cluster: &ClusterState, identity: &AzureIdentity, now: OffsetDateTime) -> Result<(Principal, String), Refused> {
    let secret = client_secret(cluster, identity).map_err(|MissingSecret(m)| Refused::new(ImdsError::MissingClientSecret, StatusCode::FORBIDDEN, m))?;
    let client_id = identity.spec.client_id.as_str();
    // An empty tenantID means this server's tenant, the only one kite has.
    let tenant = Some(identity.spec.tenant_id.as_str()).filter(|t| !t.is_empty());
    let authenticated = async {
        if let Some(t) = tenant {
            service::check_tenant(state, t)?;
        }
        let (_, client) = service::lookup_client(state, client_id).await?;
        service::check_secret(&client, client_id, &secret, now)?;
        Ok::<_, OAuthError>(client)
    };
    match authenticated.await {
        Ok(client) => Ok((client.principal.clone(), hex::encode(digest::digest(&digest::SHA256, secret.as_bytes())))),
        Err(e) if e.status.is_server_error() => {
            Err(Refused::new(ImdsError::Internal, StatusCode::INTERNAL_SERVER_ERROR, "kite's token service failed; see kite's log"))
        }
        Err(e) => {
            let reference = identity
                .spec
                .client_password
                .as_ref()
                .map(|r| format!("{}/{}", if r.namespace.is_empty() { &identity.metadata.namespace } else { &r.namespace }, r.name))
                .unwrap_or_default();
            Err(Refused::new(
                ImdsError::ClientSecretRefused,
                StatusCode::FORBIDDEN,
                format!(
                    "AzureIdentity {}/{}: the token service refused service principal {client_id} with the client secret from Secret {reference}: {}",
                    identity.metadata.namespace,
                    identity.metadata.name,
                    e.summary()
                ),
            ))
        }
    }
}

/// Why a call got no token from the agent itself.
pub enum Unanswered {
    Refused(Refused),
    /// An excepted pod: its call goes to the node's IMDS.
    Excepted,
}

impl From<Refused> for Unanswered {
    fn from(refused: Refused) -> Self {
        Unanswered::Refused(refused)
    }
}

/// Who asks for a pod's token: the address it called from and, when `kite agent` relays the call,
/// the node whose agent that is (only that node's pods are answered for).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub ip: IpAddr,
    pub node: Option<&'a str>,
}

pub async fn token(State(agent): State<Agent>, Query(q): Query<ImdsQuery>, request: Request) -> Response {
    if let Err(refused) = require_metadata(request.headers()) {
        return refused.into_response();
    }
    let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return Refused::new(ImdsError::Internal, StatusCode::INTERNAL_SERVER_ERROR, "the caller's address is unknown").into_response();
    };
    let answer = match agent.tokens.as_ref() {
        Tokens::Local(state) => answer(state, Caller { ip: addr.ip(), node: None }, &q).await,
        Tokens::Remote(remote) => remote.token(addr.ip(), &q, &agent.metrics).await,
    };
    match answer {
        Ok(body) => body.into_response(),
        Err(Unanswered::Excepted) => agent.upstream.relay(request).await,
        Err(Unanswered::Refused(refused)) => refused.into_response(),
    }
}

/// The token for the pod at `caller`, decided and minted here, with the decision in the audit trail.
pub async fn answer(state: &AppState, caller: Caller<'_>, q: &ImdsQuery) -> Result<TokenJson, Unanswered> {
    let now = state.now();
    let result = issue(state, q, caller, now).await;
    let trail = Trail { state, caller, resource: q.resource.as_deref().unwrap_or_default(), now };
    match result {
        Ok(Issued { body, pod, identity, first }) => {
            // The trail holds each token a pod was given once; the same token served again from
            // the cache is counted in kite_imds_token_cache_hits, not written per call.
            if first {
                trail.record(&pod, ISSUE_OPERATION, |e| e.with("identity", identity));
            }
            Ok(body)
        }
        Err(Unanswered::Excepted) => {
            trail.record("", "Kite.NodeAgent/imds/forward/action", |e| e);
            Err(Unanswered::Excepted)
        }
        Err(Unanswered::Refused(refused)) => {
            trail.record("", ISSUE_OPERATION, |e| e.ended(refused.status.as_u16()).failed_with(refused.kind.label()).with("reason", &refused.message));
            Err(Unanswered::Refused(refused))
        }
    }
}

/// One call's entry in the audit trail: the pod's address is the caller until the pod is known.
struct Trail<'a> {
    state: &'a AppState,
    caller: Caller<'a>,
    resource: &'a str,
    now: OffsetDateTime,
}

impl Trail<'_> {
    fn record(&self, pod: &str, operation: &str, details: impl FnOnce(AuditEvent) -> AuditEvent) {
        self.state.audit.record(|| {
            let correlation = uuid::Uuid::new_v4().to_string();
            let ip = self.caller.ip.to_string();
            let caller = if pod.is_empty() { ip.as_str() } else { pod };
            let new = NewEvent {
                shape: Shape::ActivityLog,
                category: Category::NodeAgent,
                caller,
                // Relayed by a node's agent, the pod's address was checked there (and the agent
                // authenticated here); embedded, here.
                authentication: if self.caller.node.is_some() { "NodeAgent" } else { "PodIP" },
                operation_name: operation,
                resource_id: self.resource,
                correlation_id: &correlation,
            };
            let event = AuditEvent::new(new, self.now).from_ip(Some(ip.clone()));
            details(match self.caller.node {
                Some(node) => event.with("node", node),
                None => event,
            })
        });
    }
}

/// The node agent's token decision in the audit trail.
pub const ISSUE_OPERATION: &str = "Kite.NodeAgent/imds/token/action";

/// A token the agent gives a pod: the body, the pod (`namespace/name`), its AzureIdentity, and
/// whether this pod gets this token for the first time.
struct Issued {
    body: TokenJson,
    pod: String,
    identity: String,
    first: bool,
}

/// The pod calling from `caller`'s address and the identity it gets, as the controller mode
/// allows: the decision `kite agent` makes on its node and the server makes again on its own view.
pub fn pod_identity(
    cluster: &ClusterState,
    mode: ControllerMode,
    caller: Caller<'_>,
    selector: &Selector,
) -> Result<(String, String, Box<AzureIdentity>), Unanswered> {
    let ip = caller.ip.to_string();
    let decision = match caller.node {
        Some(node) => decide_on_node(cluster, node, &ip, selector),
        None => decide(cluster, &ip, selector),
    };
    let decision = match mode {
        ControllerMode::Standard => require_assigned(cluster, decision),
        ControllerMode::Managed => decision,
    };
    match decision {
        PodDecision::Identity { pod, namespace, identity } => Ok((pod, namespace, identity)),
        // 403, not 404: azure-identity retries 404s for a minute before giving up.
        PodDecision::Refused { reason, message } => Err(Refused::new(ImdsError::PodRefused(reason), StatusCode::FORBIDDEN, message).into()),
        PodDecision::Excepted { pod, namespace, exception } => {
            tracing::info!(pod = %pod, namespace = %namespace, exception = %exception, "excepted pod forwarded to the node's IMDS");
            Err(Unanswered::Excepted)
        }
    }
}

async fn issue(state: &AppState, q: &ImdsQuery, caller: Caller<'_>, now: OffsetDateTime) -> Result<Issued, Unanswered> {
    let resource = q.resource()?;
    // AzureIdentity objects name client IDs; an object_id is translated through the directory.
    let client_id = match (&q.client_id, &q.object_id) {
        (None, Some(o)) => Some(client_id_of(state, o).await?),
        _ => None,
    };
    let cluster = state.cluster.pods();
    let (pod, namespace, identity) = pod_identity(&cluster, state.pod_identity_mode, caller, &q.selector(client_id))?;
    // A type 1 identity authenticates with its Secret on every call, as the token endpoint would:
    // a reset or expired credential is refused at once, not when a cached token runs out.
    let service_principal = match identity.spec.kind {
        0 => None,
        1 => Some(service_principal(state, &cluster, &identity, now).await?),
        kind => {
            return Err(Refused::new(
                ImdsError::UnsupportedIdentityType,
                StatusCode::BAD_REQUEST,
                format!("AzureIdentity {namespace}/{} has type {kind}; kite's node agent serves type 0 (user-assigned managed identity) and type 1 (service principal with a client secret), not type 2 (service principal with a certificate)", identity.metadata.name),
            )
            .into())
        }
    };
    // The secret's digest is part of the key, so a changed Secret is never answered from an entry
    // minted with the one before.
    let key = (identity.spec.client_id.to_lowercase(), resource.clone(), service_principal.as_ref().map(|(_, digest)| digest.clone()));
    let who = format!("{namespace}/{pod}");
    let issued = |body: TokenJson, first: bool| Issued { body, pod: who.clone(), identity: format!("{namespace}/{}", identity.metadata.name), first };
    if let Some((expires_on, body, first)) = state.imds_cache.get(&key, &who) {
        if expires_on - now.unix_timestamp() > 300 {
            state.metrics.cache_hit();
            return Ok(issued(body, first));
        }
    }
    state.metrics.cache_miss();
    let principal = match service_principal {
        Some((principal, _)) => principal,
        None => managed_identity(state, &namespace, &identity).await?,
    };
    let mut body = service::mint(state, &principal, &resource, false, now)
        .map_err(|e| Refused::new(ImdsError::Internal, e.status, format!("the token service could not mint a token: {}", e.summary())))?;
    body["client_id"] = json!(principal.app_id);
    let expires_on = body["expires_on"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(now.unix_timestamp());
    let body = TokenJson::new(&body);
    let (evicted, entries) = state.imds_cache.insert(key, (expires_on, body.clone()), &who);
    state.metrics.cache_stored(evicted, entries);
    tracing::info!(pod = %pod, namespace = %namespace, identity = %identity.metadata.name, "imds token issued");
    Ok(issued(body, true))
}
