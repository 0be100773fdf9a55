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
use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};
use kite_k8s::workload_identity::{mutate, pod_request, Mutation, PodRequest, Settings};
use serde_json::{json, Value};

use kite_core::directory::Tenant;

use crate::infra::state::AppState;

/// Where EKS Pod Identity's agent answers on every node.
const CONTAINER_CREDENTIALS_URI: &str = "http://169.254.170.23/v1/credentials";

/// A request the webhook cannot read: 400 naming what is wrong (the API server logs it).
pub struct MalformedReview(String);

impl IntoResponse for MalformedReview {
    fn into_response(self) -> Response {
        tracing::warn!("webhook: malformed AdmissionReview: {}", self.0);
        (StatusCode::BAD_REQUEST, Json(json!({"error": self.0}))).into_response()
    }
}

pub async fn mutate_pod(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, MalformedReview> {
    let review: Value = serde_json::from_slice(&body).map_err(|e| MalformedReview(format!("the body is not JSON: {e}")))?;
    let request = pod_request(&review).map_err(MalformedReview)?;
    let mutation = admit(&state, &request).await;
    let user = review.pointer("/request/userInfo/username").and_then(Value::as_str).unwrap_or_default();
    state.audit.record(|| decision_event(&state, user, &request, &mutation));
    Ok(Json(review_response(&request, mutation)))
}

/// The webhook's decision in the trail: who created the pod, the pod and its service account, and
/// what was injected (the operations' paths, never the values).
fn decision_event(state: &AppState, user: &str, request: &PodRequest, mutation: &Mutation) -> AuditEvent {
    let correlation = uuid::Uuid::new_v4().to_string();
    let new = NewEvent {
        shape: Shape::ActivityLog,
        category: Category::Webhook,
        caller: user,
        authentication: "KubernetesUser",
        operation_name: "admission.k8s.io/pods/mutate",
        resource_id: &request.name,
        correlation_id: &correlation,
    };
    let paths: Vec<&str> = mutation.patch.iter().filter_map(|op| op["path"].as_str()).collect();
    AuditEvent::new(new, state.now())
        .with("serviceAccount", &request.service_account)
        .with("decision", if paths.is_empty() { "unchanged" } else { "mutated" })
        .with("patched", paths.join(" "))
        .with("warnings", mutation.warnings.len().to_string())
}

/// The pod's mutation, with every problem met on the way as a warning.
async fn admit(state: &AppState, request: &PodRequest) -> Mutation {
    let account = state.cluster.pods().service_account(&request.namespace, &request.service_account).and_then(|sa| serde_json::to_value(sa).ok());
    let (associated, store_warning) = associated(state, request).await;
    let mut mutation = mutate(&request.pod, &request.name, account.as_ref(), associated, &state.workload_identity);
    mutation.warnings.extend(store_warning);
    for w in &mutation.warnings {
        tracing::warn!("webhook: {w}");
    }
    mutation
}

/// Whether the pod's service account has an EKS pod identity association. A store failure admits
/// the pod without one, with a warning, rather than failing a pod for kite's store.
async fn associated(state: &AppState, request: &PodRequest) -> (bool, Option<String>) {
    let Some(eks) = state.k8s.cluster_id.as_deref() else { return (false, None) };
    match state.store.list_pod_identity_associations(eks, Some(&request.namespace), Some(&request.service_account)).await {
        Ok(found) => (!found.is_empty(), None),
        Err(e) => {
            tracing::error!("webhook: reading pod identity associations failed: {e}");
            (false, Some("kite could not read its pod identity associations; the pod is admitted without them".to_string()))
        }
    }
}

/// What pods are told: kite is their Entra authority and their STS.
pub fn settings(tenant: &Tenant, public_url: &str, ca_config_map: Option<String>, region: String) -> Settings {
    Settings {
        tenant_id: tenant.tenant_id.to_string(),
        authority_host: public_url.to_string(),
        sts_endpoint: Some(public_url.to_string()),
        container_credentials_uri: CONTAINER_CREDENTIALS_URI.into(),
        ca_config_map,
        region: Some(region),
    }
}

/// The AdmissionReview answer: always allowed, with the patch when there is one.
fn review_response(request: &PodRequest, mutation: Mutation) -> Value {
    let mut response = json!({"uid": request.uid, "allowed": true});
    if !mutation.patch.is_empty() {
        let patch = serde_json::to_vec(&mutation.patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
        tracing::info!(pod = %request.name, operations = mutation.patch.len(), "webhook: pod mutated");
    }
    if !mutation.warnings.is_empty() {
        response["warnings"] = json!(mutation.warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}
