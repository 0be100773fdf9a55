//! What the Kubernetes API server calls: TokenReview and SubjectAccessReview (`k8s`), with
//! kite-issued access tokens reviewed by `entra_review`, and the workload identity admission
//! webhook (`admission`). Security-sensitive: these answers decide
//! who a cluster's callers are and what they may do.

pub mod admission;
pub mod entra_review;
pub mod k8s;
pub mod policy;

use axum::routing::post;
use axum::Router;

use crate::infra::state::AppState;

/// What the API server calls: TokenReview, SubjectAccessReview and the mutating webhook.
pub fn routes() -> Router<AppState> {
    Router::new().route("/authorize", post(k8s::authorize)).route("/authenticate", post(k8s::authenticate)).route("/mutate-v1-pod", post(admission::mutate_pod))
}

/// Serves `app` on `listener` over TLS that requires a client certificate (`tls`), under its own
/// connection cap.
pub fn spawn(
    listener: std::net::TcpListener,
    app: Router,
    tls: axum_server::tls_rustls::RustlsConfig,
    handle: axum_server::Handle,
    limits: crate::infra::conn::ConnectionLimits,
) {
    tokio::spawn(async move {
        let mut server = axum_server::from_tcp_rustls(listener, tls).map(|t| t.acceptor(crate::infra::conn::Limited::new(limits))).handle(handle);
        crate::infra::conn::tune(server.http_builder());
        if let Err(e) = server.serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await {
            tracing::error!("webhook listener stopped: {e}");
        }
    });
}
