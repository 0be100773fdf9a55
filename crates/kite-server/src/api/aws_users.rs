//! IAM users and their long-term access keys, in IAM's field names (`UserName`, `UserId`,
//! `AccessKeyId`, `Status`, …). A key's secret is derived, never stored: it is in the create
//! answer once and nowhere else.

use axum::extract::State;

use super::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::aws::user::{AccessKey, KeyStatus, User};
use serde::Deserialize;
use serde_json::{json, Value};

use super::aws::{may, rfc3339};
use super::{respond, Body};
use crate::api::auth::Caller;
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::token::iam::iam_error;

fn render_user(u: &User) -> Value {
    json!({"Path": u.path, "UserName": u.user_name, "UserId": u.user_id, "Arn": u.arn.to_string(), "CreateDate": rfc3339(&u.created)})
}

fn render_key(k: &AccessKey) -> Value {
    json!({"UserName": k.user_name, "AccessKeyId": k.access_key_id, "Status": k.status.to_string(), "CreateDate": rfc3339(&k.created)})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewUser {
    user_name: String,
    #[serde(default)]
    path: Option<String>,
}

pub async fn create_user(State(state): State<AppState>, caller: Caller, Body(req): Body<NewUser>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let user = User::new(&state.aws_account(), &req.user_name, req.path.as_deref(), caller.now)
        .map_err(|e| ApiError::bad_request("ValidationError", e.to_string()))?;
    state.store.create_iam_user(&user).await.map_err(iam_error)?;
    Ok(respond(StatusCode::CREATED, json!({"User": render_user(&user)})))
}

pub async fn list_users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    let users = state.store.list_iam_users().await?;
    Ok(Json(json!({"Users": users.iter().map(render_user).collect::<Vec<_>>()})))
}

pub async fn get_user(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    Ok(Json(json!({"User": render_user(&state.store.get_iam_user(&name).await.map_err(iam_error)?)})))
}

pub async fn delete_user(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let user = state.store.delete_iam_user(&name).await.map_err(iam_error)?;
    tracing::info!(user = %user.arn, "iam user deleted");
    Ok(respond(StatusCode::OK, json!({})))
}

pub async fn create_key(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    let user = state.store.get_iam_user(&name).await.map_err(iam_error)?;
    let key = AccessKey::new(&user, caller.now);
    let secret = crate::token::sessions::issuer(&state)
        .await
        .ok()
        .and_then(|issuer| issuer.user_key_secret(&key))
        .ok_or_else(|| ApiError::from(kite_store::Error::Backend("the STS master key is unavailable".into())))?;
    state.store.create_access_key(&key).await.map_err(iam_error)?;
    tracing::info!(user = %user.arn, access_key_id = %key.access_key_id, "access key created");
    let mut body = render_key(&key);
    body["SecretAccessKey"] = json!(secret);
    Ok(respond(StatusCode::CREATED, json!({"AccessKey": body})))
}

pub async fn list_keys(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    may(&state, &caller, "read").await?;
    let keys = state.store.list_access_keys(&name).await.map_err(iam_error)?;
    Ok(Json(json!({"AccessKeyMetadata": keys.iter().map(render_key).collect::<Vec<_>>()})))
}

/// `?UserName=` on key updates and deletes, optional as in IAM; when given it must own the key.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Owner {
    user_name: Option<String>,
}

async fn check_owner(state: &AppState, owner: &Owner, access_key_id: &str) -> ApiResult<()> {
    let key = state.store.get_access_key(access_key_id).await.map_err(iam_error)?;
    match &owner.user_name {
        Some(user) if !key.user_name.eq_ignore_ascii_case(user) => Err(ApiError::not_found(
            "NoSuchEntity",
            format!("The Access Key with id {access_key_id} cannot be found for user {user}: it belongs to {}", key.user_name),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyUpdate {
    status: KeyStatus,
}

pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(akid): Path<String>,
    Query(owner): Query<Owner>,
    Body(req): Body<KeyUpdate>,
) -> ApiResult<Json<Value>> {
    may(&state, &caller, "write").await?;
    check_owner(&state, &owner, &akid).await?;
    let key = state.store.update_access_key_status(&akid, req.status).await.map_err(iam_error)?;
    tracing::info!(access_key_id = %key.access_key_id, status = %key.status, "access key status changed");
    Ok(Json(json!({"AccessKey": render_key(&key)})))
}

pub async fn delete_key(State(state): State<AppState>, caller: Caller, Path(akid): Path<String>, Query(owner): Query<Owner>) -> ApiResult<Response> {
    may(&state, &caller, "write").await?;
    check_owner(&state, &owner, &akid).await?;
    state.store.delete_access_key(&akid).await.map_err(iam_error)?;
    tracing::info!(access_key_id = %akid, "access key deleted");
    Ok(respond(StatusCode::OK, json!({})))
}
