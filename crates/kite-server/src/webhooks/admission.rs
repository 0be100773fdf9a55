//! `POST /mutate-v1-pod`: the workload identity webhook. An `admission.k8s.io/v1` AdmissionReview
//! in, the same with a base64 JSONPatch out. Service accounts come from the cluster source and EKS
//! pod identity associations from the store, so nothing calls the API server per request. The
//! webhook never fails a pod it does not concern: problems become `warnings` and a log line.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use kite_k8s::workload_identity::{mutate, pod_request, Settings};
use serde_json::{json, Value};

use crate::infra::state::AppState;

/// Where EKS Pod Identity's agent answers on every node.
const CONTAINER_CREDENTIALS_URI: &str = "http://169.254.170.23/v1/credentials";

pub async fn mutate_pod(State(state): State<AppState>, body: Bytes) -> Response {
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(format!("the body is not JSON: {e}")),
    };
    let request = match pod_request(&review) {
        Ok(r) => r,
        Err(problem) => return refuse(problem),
    };
    let cluster = state.cluster.pods();
    let account = cluster.service_account(&request.namespace, &request.service_account).and_then(|sa| serde_json::to_value(sa).ok());
    let mut warnings = Vec::new();
    let associated = match state.k8s.cluster_id.as_deref() {
        Some(eks) => match state.store.list_pod_identity_associations(eks, Some(&request.namespace), Some(&request.service_account)).await {
            Ok(found) => !found.is_empty(),
            Err(e) => {
                // Admitted without EKS Pod Identity rather than failing a pod for kite's store.
                tracing::error!("webhook: reading pod identity associations failed: {e}");
                warnings.push("kite could not read its pod identity associations; the pod is admitted without them".to_string());
                false
            }
        },
        None => false,
    };
    let settings = Settings {
        tenant_id: state.tenant.tenant_id.to_string(),
        authority_host: state.public_url.clone(),
        sts_endpoint: Some(state.public_url.clone()),
        container_credentials_uri: CONTAINER_CREDENTIALS_URI.into(),
        ..Settings::default()
    };
    let mut mutation = mutate(&request.pod, &request.name, account.as_ref(), associated, &settings);
    warnings.append(&mut mutation.warnings);
    for w in &warnings {
        tracing::warn!("webhook: {w}");
    }
    let mut response = json!({"uid": request.uid, "allowed": true});
    if !mutation.patch.is_empty() {
        let patch = serde_json::to_vec(&mutation.patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
        tracing::info!(pod = %request.name, operations = mutation.patch.len(), "webhook: pod mutated");
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})).into_response()
}

fn refuse(problem: String) -> Response {
    tracing::warn!("webhook: malformed AdmissionReview: {problem}");
    (StatusCode::BAD_REQUEST, Json(json!({"error": problem}))).into_response()
}
