//! The node agent: what pods on a node call (IMDS tokens, EKS `/v1/credentials`, the relay to the
//! node's real IMDS for everything else), on a plain-HTTP listener of its own, as NMI serves it
//! (pods reach it through the IMDS address, which is http-only). Never on the management listener.
//!
//! It runs in two shapes. Embedded (`kite serve --agent-listen`), it answers from this process's
//! store and keys. As `kite agent` (`run`), one per node with no database and no keys, it finds
//! the calling pod among its node's pods, keeps a token cache, and asks the kite server for what
//! it lacks (`remote`), proving itself with its own service-account token; the server answers only
//! for pods on that agent's node (`nodes`). `redirect` installs the iptables rules that send pods'
//! IMDS traffic to the agent.

pub mod cache;
pub mod container_credentials;
pub mod imds;
pub mod nodes;
pub mod redirect;
pub mod remote;
pub mod run;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::Layer;

use crate::infra::metrics::{self, Metrics};
use crate::infra::state::AppState;

/// Where the agent's answers come from.
pub enum Tokens {
    /// `kite serve --agent-listen`: this process holds the store and the keys.
    Local(AppState),
    /// `kite agent`: the kite server, asked over HTTPS for what the cache lacks.
    Remote(remote::NodeAgent),
}

/// The agent listener's state.
#[derive(Clone)]
pub struct Agent {
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
    pub upstream: Arc<upstream::UpstreamImds>,
}

impl Agent {
    /// The agent inside `kite serve`.
    pub fn embedded(state: &AppState) -> Agent {
        Agent { metrics: state.metrics.clone(), upstream: state.upstream_imds.clone(), tokens: Arc::new(Tokens::Local(state.clone())) }
    }
}

impl FromRef<Agent> for Arc<Metrics> {
    fn from_ref(agent: &Agent) -> Self {
        agent.metrics.clone()
    }
}

fn routes() -> Router<Agent> {
    Router::new()
        .route("/metadata/identity/oauth2/token", get(imds::token))
        .route("/v1/credentials", get(container_credentials::on_agent))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

/// Ready once the agent can answer: the pods of its node have been listed and its own token can be
/// read. An unreachable server does not make it unready; it serves its cache meanwhile.
async fn ready(State(agent): State<Agent>) -> Response {
    match agent.tokens.as_ref() {
        Tokens::Local(_) => "ok".into_response(),
        Tokens::Remote(remote) => match remote.readiness() {
            Ok(()) => "ok".into_response(),
            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        },
    }
}

/// The agent listener's router: the agent routes, with IMDS's case-insensitive `/metadata` prefix.
pub fn router(agent: Agent) -> Router {
    let app = routes()
        .fallback(to_upstream)
        .layer(axum::middleware::from_fn_with_state(agent.metrics.clone(), metrics::track))
        .layer(axum::middleware::from_fn(crate::infra::middleware::access_log))
        .with_state(agent);
    Router::new().fallback_service(tower::util::MapRequestLayer::new(crate::infra::middleware::rewrite).layer(app))
}

/// The agent listener's service: its router with the caller's address (pods are found by it).
pub fn service(agent: Agent) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    router(agent).into_make_service_with_connect_info::<SocketAddr>()
}

/// Every other path goes to the node's IMDS, as NMI's default handler does: iptables sends all
/// of the IMDS address's traffic to the agent, so instance metadata must keep working.
async fn to_upstream(State(agent): State<Agent>, request: Request) -> Result<Response, imds::Refused> {
    imds::require_metadata(request.headers())?;
    Ok(agent.upstream.relay(request).await)
}

/// Serves the agent endpoints on `listener` until `handle` shuts it down, under its own
/// connection cap (pods cannot crowd out the HTTPS listener, nor it them).
pub fn spawn(listener: std::net::TcpListener, agent: Agent, handle: axum_server::Handle, limits: crate::infra::conn::ConnectionLimits) {
    tokio::spawn(async move {
        let mut server = axum_server::from_tcp(listener).acceptor(crate::infra::conn::Limited::new(limits)).handle(handle);
        crate::infra::conn::tune(server.http_builder());
        if let Err(e) = server.serve(service(agent)).await {
            tracing::error!("node agent listener stopped: {e}");
        }
    });
}
