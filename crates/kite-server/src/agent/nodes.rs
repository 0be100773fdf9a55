//! The server's side of `kite agent`: `POST /agent/v1/token` (a pod's IMDS token) and
//! `POST /agent/v1/credentials` (a pod's EKS Pod Identity credentials), on the HTTPS listener.
//!
//! Security-sensitive: this is what keeps a compromised node from reaching every identity. An agent
//! proves itself with its own projected service-account token (from `--cluster-issuer`, audience
//! `--agent-audience`, the service account `--agent-service-account` names, bound to its pod). Its
//! node is where kite's own view of the cluster schedules that pod, never what the agent says; and
//! it is answered only for pods on that node, as the NodeRestriction admission plugin limits a
//! kubelet. The pod's address the agent vouches for is decided again here against the server's view.

use std::net::IpAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kite_core::aws::eks;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent::container_credentials;
use crate::agent::imds::{self, Caller, ImdsQuery, Refused, Unanswered};
use crate::infra::metrics::ImdsError;
use crate::infra::state::AppState;
use crate::token::projected::{self, Flaw};

pub fn routes() -> Router<AppState> {
    Router::new().route("/agent/v1/token", post(token)).route("/agent/v1/credentials", post(credentials))
}

/// Which service account node agents run as, and the audience their tokens must carry.
#[derive(Clone, Debug)]
pub struct AgentAccount {
    pub namespace: String,
    pub name: String,
    pub audience: String,
}

impl AgentAccount {
    /// `--agent-service-account NAMESPACE:NAME`.
    pub fn parse(spec: &str, audience: &str) -> anyhow::Result<AgentAccount> {
        match spec.split_once(':') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains(':') => {
                Ok(AgentAccount { namespace: ns.into(), name: name.into(), audience: audience.into() })
            }
            _ => anyhow::bail!("--agent-service-account '{spec}': give NAMESPACE:NAME, the service account kite agent runs as (e.g. kite-system:kite-agent)"),
        }
    }
}

/// The agent protocol's refusal: IMDS's shape, plus the kind so that the agent counts it as the
/// server did. The agent passes the description on to the pod.
pub struct ForAgent(pub Refused);

impl IntoResponse for ForAgent {
    fn into_response(self) -> Response {
        let body = json!({"error": "invalid_request", "error_description": self.0.message(), "kind": self.0.kind().label()});
        let mut response = (self.0.status(), Json(body)).into_response();
        response.extensions_mut().insert(self.0.kind());
        response
    }
}

fn unauthorized(status: StatusCode, message: impl Into<String>) -> ForAgent {
    ForAgent(Refused::new(ImdsError::AgentUnauthorized, status, message))
}

/// An authenticated node agent, with the node kite's view of the cluster runs its pod on.
pub struct NodeAgent {
    pub node: String,
}

impl FromRequestParts<AppState> for NodeAgent {
    type Rejection = ForAgent;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<NodeAgent, ForAgent> {
        let (Some(account), Some(issuer)) = (&state.agent_account, &state.cluster_issuer) else {
            return Err(unauthorized(
                StatusCode::NOT_FOUND,
                "this kite server accepts no node agents: start it with --agent-service-account NAMESPACE:NAME and --cluster-issuer URL (the cluster's service-account issuer)",
            ));
        };
        let header = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let bearer = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).unwrap_or_default();
        let token = projected::verify(state, bearer, issuer, &account.audience, state.now()).await.map_err(|r| match r.flaw {
            Flaw::KeysUnavailable => unauthorized(StatusCode::SERVICE_UNAVAILABLE, r.message),
            _ => unauthorized(StatusCode::UNAUTHORIZED, format!("node agent token refused: {}", r.message)),
        })?;
        let pod = eks::pod_of(&token.claims).map_err(|e| unauthorized(StatusCode::UNAUTHORIZED, format!("node agent token refused: {e}")))?;
        if pod.namespace != account.namespace || pod.service_account != account.name {
            return Err(unauthorized(
                StatusCode::FORBIDDEN,
                format!("service account {}/{} is not the node agents' service account (--agent-service-account)", pod.namespace, pod.service_account),
            ));
        }
        let node = node_of_agent(state, &pod)?;
        let claimed = token.claims.pointer("/kubernetes.io/node/name").and_then(Value::as_str);
        if claimed.is_some_and(|c| c != node) {
            return Err(unauthorized(
                StatusCode::FORBIDDEN,
                format!("the token names node {}, but pod {}/{} runs on node {node}", claimed.unwrap_or_default(), pod.namespace, pod.pod_name),
            ));
        }
        Ok(NodeAgent { node })
    }
}

/// The node the agent's own pod is scheduled on, by the server's watch; the token's pod UID must
/// be that pod's, so a token outliving its pod (or a pod of the same name) does not carry over.
fn node_of_agent(state: &AppState, pod: &eks::PodServiceAccount) -> Result<String, ForAgent> {
    let cluster = state.cluster.pods();
    let node = cluster.scheduled_node(&pod.namespace, &pod.pod_name, &pod.pod_uid).map(str::to_string);
    node.ok_or_else(|| {
        unauthorized(
            StatusCode::FORBIDDEN,
            format!("the token is bound to pod {}/{} (uid {}), which kite does not see scheduled on any node", pod.namespace, pod.pod_name, pod.pod_uid),
        )
    })
}

/// What an agent asks for: the address it saw the pod call from, and the pod's IMDS query.
#[derive(Deserialize)]
pub struct PodTokenRequest {
    #[serde(rename = "podIP")]
    pub pod_ip: IpAddr,
    #[serde(flatten)]
    pub query: ImdsQuery,
}

fn malformed(e: JsonRejection) -> ForAgent {
    ForAgent(Refused::new(ImdsError::Internal, StatusCode::BAD_REQUEST, format!("the agent's request is not understood: {}", e.body_text())))
}

async fn token(State(state): State<AppState>, agent: NodeAgent, ask: Result<Json<PodTokenRequest>, JsonRejection>) -> Response {
    let Json(ask) = match ask {
        Ok(ask) => ask,
        Err(e) => return malformed(e).into_response(),
    };
    match imds::answer(&state, Caller { ip: ask.pod_ip, node: Some(&agent.node) }, &ask.query).await {
        Ok(body) => body.into_response(),
        // The agent saw no exception for this pod, the server does: the agent forwards the call.
        Err(Unanswered::Excepted) => (StatusCode::CONFLICT, Json(json!({"error": "excepted"}))).into_response(),
        Err(Unanswered::Refused(refused)) => ForAgent(refused).into_response(),
    }
}

/// The pod's projected token (audience pods.eks.amazonaws.com) as the agent received it.
#[derive(Deserialize)]
pub struct PodCredentialsRequest {
    pub token: String,
}

async fn credentials(State(state): State<AppState>, agent: NodeAgent, ask: Result<Json<PodCredentialsRequest>, JsonRejection>) -> Response {
    let Json(ask) = match ask {
        Ok(ask) => ask,
        Err(e) => return malformed(e).into_response(),
    };
    container_credentials::answer(&state, &ask.token, Some(&agent.node), None).await.into_response()
}
