//! EKS-shaped pod identity associations (`aws eks create-pod-identity-association` and friends):
//! a cluster's (namespace, service account) mapped to one of kite's IAM roles, whose trust policy
//! must let `pods.eks.amazonaws.com` assume and tag it. Rendered in EKS's field names.

use axum::extract::State;

use super::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::aws::eks::{self, PodIdentityAssociation};
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{respond, Body};
use crate::api::auth::{authorize, Caller};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::token::iam::role_named;

/// The region in association ARNs when the caller names none (kite itself has no regions).
const DEFAULT_REGION: &str = "us-east-1";

async fn may(state: &AppState, caller: &Caller, verb: &str) -> ApiResult<()> {
    authorize(state, caller, &format!("Kite.Aws/eks/{verb}"), &Scope::subscription(&state.default_subscription())).await
}

fn eks_error(e: kite_store::Error) -> ApiError {
    match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("ResourceNotFoundException", m),
        kite_store::Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "ResourceInUseException", m),
        other => other.into(),
    }
}

/// What `list-pod-identity-associations` shows of each (EKS's summary has no role).
fn summary(a: &PodIdentityAssociation) -> Value {
    json!({"clusterName": a.cluster_name, "namespace": a.namespace, "serviceAccount": a.service_account,
           "associationArn": a.association_arn, "associationId": a.association_id})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAssociation {
    namespace: String,
    service_account: String,
    role_arn: String,
    #[serde(default)]
    region: Option<String>,
}

pub async fn create(State(state): State<AppState>, caller: Caller, Path(cluster): Path<String>, Body(req): Body<NewAssociation>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let account = state.aws_account();
    let invalid = |e: kite_core::Error| ApiError::bad_request("InvalidParameterException", e.to_string());
    let (arn, name) = eks::parse_role_arn(&req.role_arn, &account).map_err(invalid)?;
    let role = role_named(&state, &name).await.map_err(|_| {
        ApiError::bad_request(
            "InvalidParameterException",
            format!("role {arn} does not exist in kite's IAM; create it first with 'kite iam role create --role-name {name} --trust-policy file://trust.json'"),
        )
    })?;
    if !role.arn.to_string().eq_ignore_ascii_case(&arn.to_string()) {
        return Err(ApiError::bad_request("InvalidParameterException", format!("no role {arn}; did you mean {}?", role.arn)));
    }
    let region = req.region.as_deref().unwrap_or(DEFAULT_REGION);
    let association = PodIdentityAssociation::new(region, &account, &cluster, &req.namespace, &req.service_account, &role, caller.now).map_err(invalid)?;
    state.store.create_pod_identity_association(&association).await.map_err(eks_error)?;
    tracing::info!(cluster, namespace = req.namespace, service_account = req.service_account, role = %role.arn, id = association.association_id, "pod identity association created");
    Ok(respond(StatusCode::OK, json!({"association": association})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFilter {
    namespace: Option<String>,
    service_account: Option<String>,
}

pub async fn list(State(state): State<AppState>, caller: Caller, Path(cluster): Path<String>, Query(f): Query<ListFilter>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    let found = state.store.list_pod_identity_associations(&cluster, f.namespace.as_deref(), f.service_account.as_deref()).await?;
    Ok(Json(json!({"associations": found.iter().map(summary).collect::<Vec<_>>()})))
}

pub async fn show(State(state): State<AppState>, caller: Caller, Path((cluster, id)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    let a = state.store.get_pod_identity_association(&cluster, &id).await.map_err(eks_error)?;
    Ok(Json(json!({"association": a})))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path((cluster, id)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "write").await?;
    let a = state.store.delete_pod_identity_association(&cluster, &id).await.map_err(eks_error)?;
    tracing::info!(cluster, id, "pod identity association deleted");
    Ok(Json(json!({"association": a})))
}
