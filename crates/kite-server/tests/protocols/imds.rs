//! The node agent's IMDS endpoint for a type 1 identity (the bootstrap admin's service principal,
//! its secret in a Secret): the token cache's renewal point and the secret's end, to the second.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::support::{json, t0, Server, LIFETIME};

const RESOURCE: &str = "https://vault.azure.net";

/// A server whose pod identity directory holds one pod at 127.0.0.1 bound to the admin's service principal.
async fn agent() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with(|c| c.pod_identity = vec![dir.path().to_path_buf()]).await;
    let secret = base64::engine::general_purpose::STANDARD.encode(&server.secret);
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: worker, namespace: demo, labels: {{aadpodidbinding: sp-app}}}}
status: {{podIP: 127.0.0.1, phase: Running}}
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata: {{name: sp-binding, namespace: demo}}
spec: {{azureIdentity: sp-identity, selector: sp-app}}
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata: {{name: sp-identity, namespace: demo}}
spec: {{type: 1, tenantID: {}, clientID: {}, clientPassword: {{name: sp-secret, namespace: demo}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sp-secret, namespace: demo}}
data: {{clientSecret: {secret}}}
"#,
        server.tenant, server.app_id
    );
    std::fs::write(dir.path().join("pod.yaml"), yaml).unwrap();
    server.state.pod_files.reload();
    (server, dir)
}

async fn imds(server: &Server, at: OffsetDateTime) -> (StatusCode, Value) {
    let mut request = Request::get(format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RESOURCE}"))
        .header("Metadata", "true")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let (status, response) = server.send_agent(at, request).await;
    (status, json(response).await)
}

#[tokio::test]
async fn a_cached_token_is_served_until_five_minutes_before_it_expires_and_renewed_from_then() {
    let (server, _dir) = agent().await;
    let issued = t0();
    let (status, first) = imds(&server, issued).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["expires_on"], (issued.unix_timestamp() + LIFETIME).to_string());
    let renewal = issued + Duration::seconds(LIFETIME - 300);

    let (_, cached) = imds(&server, renewal - Duration::seconds(1)).await;
    assert_eq!(cached["access_token"], first["access_token"]);

    let (status, renewed) = imds(&server, renewal).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["expires_on"], (renewal.unix_timestamp() + LIFETIME).to_string());
}

#[tokio::test]
async fn a_type_1_identity_is_refused_from_the_instant_its_client_secret_expires() {
    let (server, _dir) = agent().await;
    let (status, body) = imds(&server, server.secret_end - Duration::seconds(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = imds(&server, server.secret_end).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error_description"].as_str().unwrap().contains("AADSTS7000222"), "{body}");
}

#[tokio::test]
async fn a_call_without_the_metadata_header_is_refused_as_imds_refuses_it() {
    let (server, _dir) = agent().await;
    let request = Request::get(format!("/metadata/identity/oauth2/token?resource={RESOURCE}")).body(Body::empty()).unwrap();
    let (status, response) = server.send_agent(t0(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error_description"], "Required metadata header not specified");
}

#[tokio::test]
async fn the_management_listener_does_not_serve_the_node_agent_paths() {
    let (server, _dir) = agent().await;
    for path in [format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RESOURCE}"), "/v1/credentials".to_string()] {
        let mut request = Request::get(&path).header("Metadata", "true").body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let (status, _) = server.send(t0(), request).await;
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED, "{path}: {status}");
    }
}
