//! The EKS Pod Identity agent's container-credentials endpoint, `GET /v1/credentials`, with EKS
//! Auth's AssumeRoleForPodIdentity decision behind it: what boto3 calls through
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `Authorization: <AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE>`.
//!
//! Security-sensitive: the pod's projected service-account token is the only credential. It must
//! be signed by the cluster's issuer (`--cluster-issuer`, keys through its discovery document), be
//! meant for `pods.eks.amazonaws.com`, be in its time window and be bound to a pod; its namespace
//! and service account then select the association and so the role. Credentials are minted per
//! call (no cache), so deleting an association or a role takes effect on the next call.
//!
//! Answers have the agent's shape: JSON `AccessKeyId, SecretAccessKey, Token, AccountId,
//! Expiration`, or a plain-text error `[request id]: (Code): message, fault: client` with EKS
//! Auth's status, which botocore shows verbatim.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};
use kite_core::aws::eks::{self, PodIdentityAssociation, POD_IDENTITY_SERVICE};
use kite_core::aws::xml::iso8601;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::agent::{Agent, Tokens};
use crate::infra::state::AppState;
use crate::token::iam::role_named;
use crate::token::projected::{self, Flaw, Rejected};

/// Refuses at start-up a `--cluster-issuer` whose keys kite could never fetch.
pub fn check_issuer(issuer: &str, access: crate::token::issuers::IssuerAccess) -> anyhow::Result<()> {
    if let Err(why) = access.check_url(issuer) {
        anyhow::bail!("--cluster-issuer '{issuer}': {why}; give the issuer exactly as the cluster's tokens carry it in 'iss'");
    }
    Ok(())
}

/// EKS Auth's refusal as the agent relays it: plain text `[request id]: (Code): message, fault: …`
/// with EKS Auth's status, which botocore shows verbatim.
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Shown to the pod and kept in the audit trail, so one finds the other.
    request_id: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into(), request_id: uuid::Uuid::new_v4().to_string() }
    }
    fn bad_token(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "InvalidTokenException", message)
    }
    fn denied(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "AccessDeniedException", message)
    }
    fn internal(detail: impl std::fmt::Display) -> Refusal {
        tracing::error!("container credentials: {detail}");
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", "an internal error occurred; see the server log")
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() { "server" } else { "client" };
        tracing::info!(request_id = self.request_id, code = self.code, "container credentials refused: {}", self.message);
        (self.status, format!("[{}]: ({}): {}, fault: {fault}", self.request_id, self.code, self.message)).into_response()
    }
}

/// `GET /v1/credentials` on the agent listener: answered here when this process holds the store,
/// otherwise by the kite server the agent relays the pod's token to.
pub async fn on_agent(State(agent): State<Agent>, source: Option<Extension<ConnectInfo<SocketAddr>>>, headers: HeaderMap) -> Response {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match agent.tokens.as_ref() {
        Tokens::Local(state) => answer(state, token, None, source.map(|Extension(ConnectInfo(a))| a.ip().to_string())).await.into_response(),
        Tokens::Remote(remote) => remote.credentials(token).await,
    }
}

/// The pod's credentials for `token`, with the decision in the audit trail. `node`: the node whose
/// agent relays the call, which the pod must run on.
pub async fn answer(state: &AppState, token: &str, node: Option<&str>, ip: Option<String>) -> Result<Json<Value>, Refusal> {
    let now = state.now();
    match issue(state, token, node, now).await {
        Ok((body, session, pod)) => {
            state.audit.record(|| event(state, &uuid::Uuid::new_v4().to_string(), &session, ip, now).with("pod", pod));
            Ok(Json(body))
        }
        Err(r) => {
            state.audit.record(|| event(state, &r.request_id, "", ip, now).ended(r.status.as_u16()).failed_with(r.code).with("reason", &r.message));
            Err(r)
        }
    }
}

/// The call's entry in the audit trail, as CloudTrail shows EKS Auth's AssumeRoleForPodIdentity.
fn event(state: &AppState, correlation_id: &str, caller: &str, ip: Option<String>, now: OffsetDateTime) -> AuditEvent {
    let new = NewEvent {
        shape: Shape::CloudTrail,
        category: Category::NodeAgent,
        caller,
        authentication: "ServiceAccountToken",
        operation_name: "AssumeRoleForPodIdentity",
        resource_id: state.k8s.cluster_id.as_deref().unwrap_or_default(),
        correlation_id,
    };
    AuditEvent::new(new, now).with("eventSource", "eks-auth.amazonaws.com").from_ip(ip)
}

/// Credentials, the session's ARN and the pod (`namespace/name`) they went to.
type Issued = (Value, String, String);

/// The cluster this agent serves pods of: its name and service-account issuer.
fn served_cluster(state: &AppState) -> Result<(&str, &str), Refusal> {
    match (state.k8s.cluster_id.as_deref(), state.cluster_issuer.as_deref()) {
        (Some(cluster), Some(issuer)) => Ok((cluster, issuer)),
        _ => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "InvalidRequestException",
            "this kite serves no EKS cluster's pods: start it with --eks-cluster NAME --cluster-issuer URL (the cluster's service-account issuer)",
        )),
    }
}

/// The pod a projected service-account token names, once the token is verified: the cluster's
/// issuer signed it, for EKS Pod Identity, and it is in its time window.
async fn verified_pod(state: &AppState, token: &str, cluster: &str, issuer: &str, now: OffsetDateTime) -> Result<(eks::PodServiceAccount, String), Refusal> {
    let claims = projected::verify(state, token, issuer, POD_IDENTITY_SERVICE, now).await.map_err(|Rejected { flaw, message }| match flaw {
        Flaw::Missing => Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            "Service account token cannot be empty: send the pod's token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) as the Authorization header",
        ),
        Flaw::KeysUnavailable => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", message),
        Flaw::Time => Refusal::new(StatusCode::BAD_REQUEST, "ExpiredTokenException", message),
        Flaw::Malformed | Flaw::Signature | Flaw::Audience => Refusal::bad_token(format!("cluster {cluster}: {message}")),
    })?;
    let pod = eks::pod_of(&claims.claims).map_err(Refusal::bad_token)?;
    Ok((pod, claims.str_claim("sub").unwrap_or_default().to_string()))
}

/// The association of the pod's service account, or the command that creates one.
async fn association_of(state: &AppState, cluster: &str, pod: &eks::PodServiceAccount) -> Result<PodIdentityAssociation, Refusal> {
    let found = state.store.list_pod_identity_associations(cluster, Some(&pod.namespace), Some(&pod.service_account)).await.map_err(Refusal::internal)?;
    found.into_iter().next().ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!(
                "no pod identity association for service account {ns}/{sa} (pod {pod}) in cluster {cluster}; create one with \
                 'kite eks pod-identity-association create --cluster-name {cluster} --namespace {ns} --service-account {sa} --role-arn <role ARN>'",
                ns = pod.namespace,
                sa = pod.service_account,
                pod = pod.pod_name
            ),
        )
    })
}

/// A relaying agent is answered only for pods kite's view of the cluster runs on its node.
fn check_node(state: &AppState, pod: &eks::PodServiceAccount, node: &str) -> Result<(), Refusal> {
    let cluster = state.cluster.pods();
    match cluster.scheduled_node(&pod.namespace, &pod.pod_name, &pod.pod_uid) {
        Some(n) if n == node => Ok(()),
        other => Err(Refusal::denied(format!(
            "pod {}/{} {}, not on node {node}: a node's agent gets credentials only for the pods on its own node",
            pod.namespace,
            pod.pod_name,
            other.map(|n| format!("runs on node {n}")).unwrap_or_else(|| "is not scheduled on any node kite sees".into())
        ))),
    }
}

async fn issue(state: &AppState, token: &str, node: Option<&str>, now: OffsetDateTime) -> Result<Issued, Refusal> {
    let (cluster, issuer) = served_cluster(state)?;
    let (pod, sub) = verified_pod(state, token, cluster, issuer, now).await?;
    if let Some(node) = node {
        check_node(state, &pod, node)?;
    }
    let association = association_of(state, cluster, &pod).await?;
    let account = state.aws_account();
    let role_name = eks::parse_role_arn(&association.role_arn, &account).map_err(|e| Refusal::internal(e.to_string()))?.1;
    let role = role_named(state, &role_name).await.map_err(|_| {
        Refusal::denied(format!(
            "role {} of pod identity association {} no longer exists; recreate it or point a new association at another role",
            association.role_arn, association.association_id
        ))
    })?;
    let tags = association.tags_for(Some(&pod));
    eks::check_role_trust(&role, &association.trust_context(&account, &tags)).map_err(|e| Refusal::denied(e.to_string()))?;
    let session_name = eks::session_name(cluster, &pod.pod_name);
    let sts = crate::token::sessions::issuer(state).await.map_err(|e| Refusal::internal(e.message))?;
    let (credentials, session) =
        sts.issue_for_service(&role, &session_name, POD_IDENTITY_SERVICE, &sub, tags, None, now).map_err(|e| Refusal::denied(e.message))?;
    tracing::info!(cluster, namespace = pod.namespace, service_account = pod.service_account, pod = pod.pod_name,
                   association = association.association_id, session = %session.assumed_role_arn, "container credentials issued");
    let body = json!({
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "Token": credentials.session_token,
        "AccountId": account,
        "Expiration": iso8601(credentials.expiration),
    });
    Ok((body, session.assumed_role_arn.to_string(), format!("{}/{}", pod.namespace, pod.pod_name)))
}
