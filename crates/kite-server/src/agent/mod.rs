//! The node agent's own listener: plain HTTP, as NMI serves it on every node (pods reach it through
//! the IMDS address, which is http-only), carrying only the agent endpoints. The management API
//! and the token service stay on the HTTPS listener.
//!
//! The endpoints a pod calls: IMDS (`imds`), EKS `/v1/credentials` (`container_credentials`), and
//! the relay to the node's real IMDS for everything else (`upstream`).

pub mod cache;
pub mod container_credentials;
pub mod imds;
pub mod upstream;

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower::Layer;

use crate::infra::metrics;
use crate::infra::state::AppState;

/// The node-agent endpoints (Azure IMDS tokens, EKS Pod Identity container credentials, metrics),
/// mounted on the agent listener and on the main one.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metadata/identity/oauth2/token", get(imds::token)).route("/metrics", get(metrics::render)).merge(container_credentials::routes())
}

/// The agent listener's service: the agent routes, IMDS's case-insensitive `/metadata` prefix,
/// and the caller's address (pods are found by it).
pub fn service(state: AppState) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    let app = routes()
        .fallback(to_upstream)
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(axum::middleware::from_fn(crate::infra::middleware::access_log))
        .with_state(state);
    Router::new()
        .fallback_service(tower::util::MapRequestLayer::new(crate::infra::middleware::rewrite).layer(app))
        .into_make_service_with_connect_info::<SocketAddr>()
}

/// Every other path goes to the node's IMDS, as NMI's default handler does: iptables sends all
/// of the IMDS address's traffic to the agent, so instance metadata must keep working.
async fn to_upstream(State(state): State<AppState>, request: Request) -> Result<Response, imds::Refused> {
    imds::require_metadata(request.headers())?;
    Ok(crate::agent::upstream::relay(&state.upstream_imds, request).await)
}

/// Serves the agent endpoints on `listener` until `handle` shuts it down, under its own
/// connection cap (pods cannot crowd out the HTTPS listener, nor it them).
pub fn spawn(listener: std::net::TcpListener, state: AppState, handle: axum_server::Handle, limits: crate::infra::conn::ConnectionLimits) {
    tokio::spawn(async move {
        let mut server = axum_server::from_tcp(listener).acceptor(crate::infra::conn::Limited::new(limits)).handle(handle);
        crate::infra::conn::tune(server.http_builder());
        if let Err(e) = server.serve(service(state)).await {
            tracing::error!("node agent listener stopped: {e}");
        }
    });
}
