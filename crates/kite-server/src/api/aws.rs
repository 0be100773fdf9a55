//! IAM-shaped objects kite's STS trusts: OIDC identity providers and roles with trust policies.
//! Rendered in IAM's own field names (`Arn`, `RoleName`, `AssumeRolePolicyDocument`, …).

use axum::extract::State;

use super::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::aws::iam::{OidcProvider, Role};
use kite_core::Scope;
use kite_store::AwsKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{respond, Body};
use crate::api::auth::{authorize, Caller};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::token::iam::{decode, iam_error, providers, role_named};

pub(crate) fn rfc3339(t: &time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn render_role(r: &Role) -> Value {
    json!({"Path": r.path, "RoleName": r.role_name, "RoleId": r.role_id, "Arn": r.arn.to_string(), "CreateDate": rfc3339(&r.created),
           "AssumeRolePolicyDocument": r.trust_policy, "MaxSessionDuration": r.max_session_duration})
}

pub fn render_provider(p: &OidcProvider) -> Value {
    json!({"Arn": p.arn.to_string(), "Url": p.url, "ClientIDList": p.client_ids, "ThumbprintList": p.thumbprints})
}

pub(crate) async fn may(state: &AppState, caller: &Caller, verb: &str) -> ApiResult<()> {
    authorize(state, caller, &format!("Kite.Aws/iam/{verb}"), &Scope::subscription(&state.default_subscription())).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewProvider {
    url: String,
    #[serde(rename = "ClientIDList", default)]
    client_ids: Vec<String>,
    #[serde(default)]
    thumbprint_list: Vec<String>,
}

pub async fn create_provider(State(state): State<AppState>, caller: Caller, Body(req): Body<NewProvider>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let p = OidcProvider::new(&state.aws_account(), &req.url, req.client_ids, req.thumbprint_list)?;
    let body = serde_json::to_value(&p).map_err(|e| ApiError::from(kite_store::Error::Backend(e.to_string())))?;
    state.store.create_aws_object(AwsKind::OidcProvider, &p.url, &body).await.map_err(iam_error)?;
    Ok(respond(StatusCode::CREATED, render_provider(&p)))
}

pub async fn list_providers(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    Ok(Json(json!({"OpenIDConnectProviderList": providers(&state).await?.iter().map(render_provider).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
pub struct ByArn {
    arn: String,
}

pub async fn delete_provider(State(state): State<AppState>, caller: Caller, Query(q): Query<ByArn>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let p = providers(&state).await?.into_iter().find(|p| p.arn.to_string() == q.arn).ok_or_else(|| {
        ApiError::not_found("NoSuchEntity", format!("OpenIDConnect provider {} not found; list them with 'kite iam oidc-provider list'", q.arn))
    })?;
    state.store.delete_aws_object(AwsKind::OidcProvider, &p.url).await.map_err(iam_error)?;
    Ok(respond(StatusCode::OK, json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewRole {
    role_name: String,
    #[serde(default)]
    path: Option<String>,
    assume_role_policy_document: Value,
    #[serde(default)]
    max_session_duration: Option<u32>,
}

pub async fn create_role(State(state): State<AppState>, caller: Caller, Body(req): Body<NewRole>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    // The CLI sends the document as read from the file; IAM also takes it as a JSON string.
    let policy = match req.assume_role_policy_document {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| ApiError::bad_request("MalformedPolicyDocument", format!("the trust policy is not JSON: {e}")))?
        }
        other => other,
    };
    let role = Role::new(&state.aws_account(), &req.role_name, req.path.as_deref(), policy, req.max_session_duration, caller.now)
        .map_err(|e| ApiError::bad_request("MalformedPolicyDocument", e.to_string()))?;
    let body = serde_json::to_value(&role).map_err(|e| ApiError::from(kite_store::Error::Backend(e.to_string())))?;
    state.store.create_aws_object(AwsKind::Role, &role.role_name, &body).await.map_err(iam_error)?;
    Ok(respond(StatusCode::CREATED, render_role(&role)))
}

pub async fn list_roles(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    let roles: Vec<Role> = state.store.list_aws_objects(AwsKind::Role).await?.into_iter().map(decode).collect::<ApiResult<_>>()?;
    Ok(Json(json!({"Roles": roles.iter().map(render_role).collect::<Vec<_>>()})))
}

pub async fn get_role(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    Ok(Json(render_role(&role_named(&state, &name).await?)))
}

pub async fn delete_role(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    state.store.delete_aws_object(AwsKind::Role, &name).await.map_err(iam_error)?;
    Ok(respond(StatusCode::OK, json!({})))
}
