//! `/kite/signingKeys`: the token signing keys, listed and rotated by those allowed to manage them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::Scope;
use kite_token::SigningKey;
use serde_json::{json, Value};

use crate::api::auth::{authorize, Caller};
use crate::api::respond;
use crate::infra::error::ApiResult;
use crate::infra::state::AppState;
use crate::token::keys;

fn render(state: &AppState, keys: &[SigningKey]) -> Value {
    let signing = state.keys().signing_kid().to_string();
    let mut by_age: Vec<&SigningKey> = keys.iter().collect();
    by_age.sort_by_key(|k| (k.created_at, k.kid.clone()));
    let rows: Vec<Value> = by_age
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let retires = by_age.get(i + 1).map(|next| next.created_at + state.token_lifetime_secs + state.key_retire_grace_secs);
            json!({"kid": k.kid, "createdAt": k.created_at, "signing": k.kid == signing, "retiresAfter": retires})
        })
        .collect();
    json!({ "value": rows })
}

async fn may_manage_keys(state: &AppState, caller: &Caller) -> ApiResult<()> {
    authorize(state, caller, "Microsoft.Authorization/signingKeys/write", &Scope::subscription(&state.default_subscription())).await
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    may_manage_keys(&state, &caller).await?;
    let keys = keys::stored_keys(&state).await?;
    Ok(Json(render(&state, &keys)))
}

/// Adds a new key that signs from now on; the old ones stay published until they retire.
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    may_manage_keys(&state, &caller).await?;
    let (key, keys) = keys::rotate(&state, caller.now).await?;
    tracing::info!(kid = %key.kid, by = %caller.object_id, "signing key rotated");
    Ok(respond(StatusCode::CREATED, render(&state, &keys)))
}
