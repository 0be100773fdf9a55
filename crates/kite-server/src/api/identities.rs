//! `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}`.

use std::collections::BTreeMap;

use axum::extract::State;

use super::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::directory::ManagedIdentity;
use kite_core::federation::FederatedCredential;
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{groups, respond};
use crate::api::auth::{authorize, Caller, CallerAccess};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub fn render(mi: &ManagedIdentity) -> Value {
    json!({
        "id": mi.id(),
        "name": mi.name,
        "type": TYPE,
        "location": mi.location,
        "tags": mi.tags,
        "properties": {"tenantId": mi.tenant_id, "principalId": mi.principal_id, "clientId": mi.client_id},
    })
}

fn scope_of(sub: &uuid::Uuid, rg: &str, name: &str) -> ApiResult<Scope> {
    Ok(Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{TYPE}/{name}"))?)
}

#[derive(Deserialize, Default)]
pub struct IdentityBody {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

/// Creates the identity, or returns the existing one unchanged when the request matches it (ARM's PUT is idempotent).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // `az identity create` may send no body at all; the group's location is the default.
    let body: IdentityBody = if body.iter().all(u8::is_ascii_whitespace) {
        IdentityBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("InvalidRequestContent", format!("The request content was invalid: {e}")))?
    };
    let sub = state.subscription(&sub)?;
    kite_core::directory::validate_identity_name(&name)?;
    authorize(&state, &caller, &format!("{TYPE}/write"), &scope_of(&sub, &rg, &name)?).await?;
    let group = groups::existing(&state, &sub, &rg).await?;
    let mut mi = ManagedIdentity::new(&group, &name, body.location.as_deref(), state.tenant.tenant_id)?;
    mi.tags = body.tags.clone().unwrap_or_default();
    kite_core::directory::validate_tags(&mi.tags)?;
    match state.store.create_identity(&mi).await {
        Ok(()) => Ok(respond(StatusCode::CREATED, render(&mi))),
        Err(kite_store::Error::Conflict(m)) => {
            let current = state.store.get_identity(&sub, &rg, &name).await?;
            if current.location != mi.location || body.tags.is_some_and(|t| t != current.tags) {
                return Err(ApiError::new(StatusCode::CONFLICT, "Conflict", format!("{m} with another location or tags; delete it first to recreate it")));
            }
            Ok(respond(StatusCode::OK, render(&current)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &scope_of(&sub, &rg, &name)?).await?;
    groups::existing(&state, &sub, &rg).await?;
    let mi = state.store.get_identity(&sub, &rg, &name).await.map_err(|e| match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("ResourceNotFound", m),
        other => other.into(),
    })?;
    Ok(Json(render(&mi)))
}

pub async fn list_in_group(State(state): State<AppState>, caller: Caller, Path((sub, rg)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &Scope::resource_group(&sub, &rg)?).await?;
    groups::existing(&state, &sub, &rg).await?;
    let all = state.store.list_identities(&sub, Some(&rg)).await?;
    Ok(Json(json!({"value": all.iter().map(render).collect::<Vec<_>>()})))
}

pub async fn list_in_subscription(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    let access = CallerAccess::load(&state, &caller).await?;
    let all = state.store.list_identities(&sub, None).await?;
    let visible = access.permitted(all, &format!("{TYPE}/read"), |mi| scope_of(&sub, &mi.resource_group, &mi.name))?;
    Ok(Json(json!({ "value": visible.iter().map(render).collect::<Vec<_>>() })))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/delete"), &scope_of(&sub, &rg, &name)?).await?;
    state.store.delete_identity(&sub, &rg, &name).await.map_err(|e| match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("ResourceNotFound", m),
        other => other.into(),
    })?;
    state.clients.changed(state.store.as_ref()).await;
    Ok(respond(StatusCode::OK, json!({})))
}

/// A federated credential as ARM shows it under its identity.
pub fn render_fic(state: &AppState, mi: &ManagedIdentity, fic: &FederatedCredential) -> Value {
    json!({
        "id": format!("{}/federatedIdentityCredentials/{}", mi.id(), fic.name),
        "name": fic.name,
        "type": format!("{TYPE}/federatedIdentityCredentials"),
        "properties": {"issuer": fic.issuer, "subject": fic.subject, "audiences": fic.audiences},
        "kiteLastRefusal": state.refusals.last(mi.client_id, &fic.name),
    })
}

#[derive(Deserialize)]
pub struct FicProps {
    issuer: String,
    subject: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
pub struct FicBody {
    properties: FicProps,
}

impl FicProps {
    pub fn into_credential(self, name: &str) -> ApiResult<FederatedCredential> {
        Ok(FederatedCredential::new(name, &self.issuer, &self.subject, self.audiences, self.description)?)
    }
}

async fn identity_for_fic(state: &AppState, caller: &Caller, sub: &str, rg: &str, name: &str, verb: &str) -> ApiResult<ManagedIdentity> {
    let sub = state.subscription(sub)?;
    authorize(state, caller, &format!("{TYPE}/federatedIdentityCredentials/{verb}"), &scope_of(&sub, rg, name)?).await?;
    state.store.get_identity(&sub, rg, name).await.map_err(|e| match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("ResourceNotFound", m),
        other => other.into(),
    })
}

pub async fn put_fic(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, fic)): Path<(String, String, String, String)>,
    super::Body(body): super::Body<FicBody>,
) -> ApiResult<Response> {
    let mi = identity_for_fic(&state, &caller, &sub, &rg, &name, "write").await?;
    let credential = body.properties.into_credential(&fic)?;
    state.store.create_federated_credential(&mi.client_id, &credential).await?;
    Ok(respond(StatusCode::CREATED, render_fic(&state, &mi, &credential)))
}

pub async fn list_fics(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Json<Value>> {
    let mi = identity_for_fic(&state, &caller, &sub, &rg, &name, "read").await?;
    let all = state.store.list_federated_credentials(&mi.client_id).await?;
    Ok(Json(json!({"value": all.iter().map(|f| render_fic(&state, &mi, f)).collect::<Vec<_>>()})))
}

pub async fn get_fic(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, fic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let mi = identity_for_fic(&state, &caller, &sub, &rg, &name, "read").await?;
    let all = state.store.list_federated_credentials(&mi.client_id).await?;
    let found = all
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(&fic))
        .ok_or_else(|| ApiError::not_found("ResourceNotFound", format!("federated credential '{fic}' does not exist on identity '{name}'")))?;
    Ok(Json(render_fic(&state, &mi, found)))
}

pub async fn delete_fic(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, fic)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let mi = identity_for_fic(&state, &caller, &sub, &rg, &name, "delete").await?;
    state.store.delete_federated_credential(&mi.client_id, &fic).await?;
    Ok(respond(StatusCode::OK, json!({})))
}
