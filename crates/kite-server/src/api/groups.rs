//! `/subscriptions/{sub}/resourceGroups/{rg}`.

use std::collections::BTreeMap;

use axum::extract::State;

use super::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::directory::ResourceGroup;
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use super::listing::{invalid_filter, ListQuery};
use super::{respond, Body, Query};
use crate::api::auth::{authorize, Caller, CallerAccess};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use kite_core::odata::Clause;

pub fn render(rg: &ResourceGroup) -> Value {
    json!({
        "id": rg.id(),
        "name": rg.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": rg.location,
        "managedBy": rg.managed_by,
        "tags": rg.tags,
        "properties": {"provisioningState": "Succeeded"},
    })
}

#[derive(Deserialize)]
pub struct GroupBody {
    location: String,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

/// Looks a group up, answering ARM's `ResourceGroupNotFound` when it is absent.
pub async fn existing(state: &AppState, sub: &uuid::Uuid, name: &str) -> ApiResult<ResourceGroup> {
    state.store.get_resource_group(sub, name).await.map_err(|e| match e {
        kite_store::Error::NotFound(_) => ApiError::not_found(
            "ResourceGroupNotFound",
            format!("Resource group '{name}' could not be found. Create it with 'kite group create --name {name} --location <location>'"),
        ),
        other => other.into(),
    })
}

/// Create, or confirm an identical existing group (PUT is idempotent, as in ARM). A group cannot
/// move location; that is refused with ARM's own error rather than silently ignored.
pub async fn put(State(state): State<AppState>, caller: Caller, Path((sub, name)): Path<(String, String)>, Body(body): Body<GroupBody>) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    let rg = ResourceGroup::new(sub, &name, &body.location, body.tags.clone().unwrap_or_default())?;
    authorize(&state, &caller, "Microsoft.Resources/subscriptions/resourceGroups/write", &rg.scope()).await?;
    match state.store.create_resource_group(&rg).await {
        Ok(()) => Ok(respond(StatusCode::CREATED, render(&rg))),
        Err(kite_store::Error::Conflict(_)) => {
            let current = existing(&state, &sub, &name).await?;
            if current.location != rg.location {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    format!("Invalid resource group location '{}'. The Resource group already exists in location '{}'.", rg.location, current.location),
                ));
            }
            if body.tags.as_ref().is_some_and(|t| *t != current.tags) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("resource group '{}' already exists with other tags; changing tags is not supported", current.name),
                ));
            }
            Ok(respond(StatusCode::OK, render(&current)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path((sub, name)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, "Microsoft.Resources/subscriptions/resourceGroups/read", &Scope::resource_group(&sub, &name)?).await?;
    Ok(Json(render(&existing(&state, &sub, &name).await?)))
}

pub async fn list(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let wanted = tag_filter(q.filter.as_deref())?;
    let sub_id = state.subscription(&sub)?;
    let groups = state.store.list_resource_groups(&sub_id).await?;
    // Like ARM, a caller sees the groups it may read, whether through the subscription or the group itself.
    let access = CallerAccess::load(&state, &caller).await?;
    let visible: Vec<Value> = groups
        .iter()
        .filter(|rg| access.allows("Microsoft.Resources/subscriptions/resourceGroups/read", &rg.scope()))
        .filter(|rg| wanted.as_ref().is_none_or(|(k, v)| rg.tags.get(k).is_some_and(|t| v.as_ref().is_none_or(|v| t == v))))
        .map(render)
        .collect();
    Ok(Json(q.page(&state, &format!("/subscriptions/{sub}/resourceGroups"), visible)?))
}

/// `az group list --tag k[=v]`: `tagName eq 'k'` and optionally `tagValue eq 'v'`, as ARM takes them.
fn tag_filter(filter: Option<&str>) -> ApiResult<Option<(String, Option<String>)>> {
    let Some(filter) = filter else { return Ok(None) };
    let (mut name, mut value) = (None, None);
    for clause in kite_core::odata::parse(filter).map_err(invalid_filter)? {
        match clause {
            Clause::Eq(p, v) if p.eq_ignore_ascii_case("tagName") => name = Some(v),
            Clause::Eq(p, v) if p.eq_ignore_ascii_case("tagValue") => value = Some(v),
            other => {
                return Err(invalid_filter(format!(
                    "Invalid $filter '{filter}': '{}' is not supported on resource groups; use tagName eq '…' [and tagValue eq '…']",
                    other.describe()
                )))
            }
        }
    }
    match name {
        Some(n) => Ok(Some((n, value))),
        None => Err(invalid_filter(format!("Invalid $filter '{filter}': tagValue needs tagName eq '…' beside it"))),
    }
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path((sub, name)): Path<(String, String)>) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    let rg = existing(&state, &sub, &name).await?;
    authorize(&state, &caller, "Microsoft.Resources/subscriptions/resourceGroups/delete", &rg.scope()).await?;
    // A node resource group lives and dies with its cluster; deleting it alone would leave the cluster broken.
    if let Some(owner) = &rg.managed_by {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ResourceGroupManagedByCluster",
            format!(
                "resource group '{}' is the node resource group of {owner}; delete that cluster with 'kite aks delete' and this group goes with it",
                rg.name
            ),
        ));
    }
    // Its vaults are soft-deleted first, as ARM does: recoverable, with their secrets, for their
    // retention (into a group of the same name made again).
    let now = caller.now;
    for vault in state.store.list_vaults(&sub, Some(&name), false).await? {
        state
            .store
            .update_vault(&vault.name, &|mut v| {
                Ok({
                    v.soft_delete(now);
                    v
                })
            })
            .await?;
        tracing::info!(vault = %vault.name, group = %rg.id(), "vault soft-deleted with its resource group");
    }
    let gone = state.store.delete_resource_group(&sub, &name).await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(group = %rg.id(), identities = gone.identities, assignments = gone.role_assignments, "resource group deleted");
    Ok(respond(StatusCode::OK, json!({"id": rg.id(), "deleted": gone})))
}
