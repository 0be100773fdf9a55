//! `Microsoft.KeyVault/vaults` as ARM serves it: create or update (PUT, also `createMode: recover`),
//! show, list by group and subscription, delete (soft), deleted vaults (list, show, purge), and
//! `accessPolicies/{add|remove|replace}`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::vault::{AccessPolicy, PolicyUpdate, Vault, VaultSpec, TYPE};
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::auth::{authorize, Caller, CallerAccess};
use crate::api::{groups, respond, Body, Path};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

pub fn render(state: &AppState, v: &Vault) -> Value {
    json!({
        "id": v.id(),
        "name": v.name,
        "type": TYPE,
        "location": v.location,
        "tags": v.tags,
        "properties": {
            "sku": {"family": "A", "name": v.sku},
            "tenantId": v.tenant_id,
            "accessPolicies": v.access_policies,
            "vaultUri": state.vault.vault_uri(&v.name),
            "enabledForDeployment": false,
            "enabledForDiskEncryption": false,
            "enabledForTemplateDeployment": false,
            "enableSoftDelete": true,
            "softDeleteRetentionInDays": v.soft_delete_retention_days,
            "enableRbacAuthorization": v.enable_rbac_authorization,
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
        },
    })
}

fn render_deleted(v: &Vault) -> Value {
    let d = v.deleted.as_ref();
    let date = |t: Option<time::OffsetDateTime>| t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    json!({
        "id": format!("/subscriptions/{}/providers/Microsoft.KeyVault/locations/{}/deletedVaults/{}", v.subscription_id, v.location, v.name),
        "name": v.name,
        "type": "Microsoft.KeyVault/deletedVaults",
        "properties": {
            "vaultId": v.id(),
            "location": v.location,
            "deletionDate": date(d.map(|d| d.deletion_date)),
            "scheduledPurgeDate": date(d.map(|d| d.scheduled_purge_date)),
            "tags": v.tags,
            "purgeProtectionEnabled": false,
        },
    })
}

pub fn scope_of(sub: &Uuid, rg: &str, name: &str) -> ApiResult<Scope> {
    Ok(Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{TYPE}/{name}"))?)
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "ResourceNotFound",
        format!("The Resource '{TYPE}/{name}' under this resource group was not found; list vaults with 'kite keyvault list'"),
    )
}

/// The live vault named in the path, which must be in that subscription and group.
async fn live(state: &AppState, sub: &Uuid, rg: &str, name: &str) -> ApiResult<Vault> {
    match state.store.get_vault(name).await {
        Ok(v) if v.deleted.is_none() && v.subscription_id == *sub && v.resource_group.eq_ignore_ascii_case(rg) => Ok(v),
        Ok(_) | Err(kite_store::Error::NotFound(_)) => Err(not_found(name)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VaultProps {
    #[serde(default)]
    tenant_id: Option<Uuid>,
    #[serde(default)]
    sku: Option<Sku>,
    #[serde(default)]
    access_policies: Option<Vec<AccessPolicy>>,
    #[serde(default)]
    enable_rbac_authorization: Option<bool>,
    #[serde(default)]
    soft_delete_retention_in_days: Option<u32>,
    #[serde(default)]
    create_mode: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct VaultBody {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    properties: VaultProps,
}

/// Create, update (a PUT over a live vault replaces what it names), or `createMode: recover`.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Body(body): Body<VaultBody>,
) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    kite_core::vault::validate_vault_name(&name)?;
    authorize(&state, &caller, &format!("{TYPE}/write"), &scope_of(&sub, &rg, &name)?).await?;
    let group = groups::existing(&state, &sub, &rg).await?;
    if let Some(t) = body.properties.tenant_id.filter(|t| *t != state.tenant.tenant_id) {
        return Err(ApiError::bad_request("InvalidTenantId", format!("properties.tenantId {t} is not this tenant ({})", state.tenant.tenant_id)));
    }
    let existing = match state.store.get_vault(&name).await {
        Ok(v) => Some(v),
        Err(kite_store::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let recover = body.properties.create_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("recover"));
    match existing {
        Some(v) if v.subscription_id != sub || !v.resource_group.eq_ignore_ascii_case(&rg) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "VaultAlreadyExists",
            format!("The vault name '{name}' is already in use (vault names are global); choose another name"),
        )),
        Some(v) if v.deleted.is_some() && !recover => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ConflictError",
            format!("A vault with the same name already exists in deleted state. Recover it with 'kite keyvault recover -n {name}' or purge it with 'kite keyvault purge -n {name}'"),
        )),
        Some(v) if v.deleted.is_some() => {
            let recovered = state.store.update_vault(&name, &|mut v| Ok({ v.deleted = None; v })).await?;
            Ok(respond(StatusCode::OK, render(&state, &recovered)))
        }
        None if recover => Err(ApiError::not_found("DeletedVaultNotFound", format!("There is no deleted vault named '{name}' to recover"))),
        Some(_) => {
            let props = &body.properties;
            let updated = state
                .store
                .update_vault(&name, &|mut v| {
                    if let Some(policies) = &props.access_policies {
                        v.access_policies.clear();
                        for p in policies {
                            v.update_policy(p.clone(), PolicyUpdate::Add)?;
                        }
                    }
                    v.enable_rbac_authorization = props.enable_rbac_authorization.unwrap_or(v.enable_rbac_authorization);
                    if let Some(tags) = &body.tags {
                        kite_core::directory::validate_tags(tags)?;
                        v.tags = tags.clone();
                    }
                    Ok(v)
                })
                .await?;
            Ok(respond(StatusCode::OK, render(&state, &updated)))
        }
        None => {
            let spec = VaultSpec {
                location: body.location.unwrap_or(group.location),
                tags: body.tags.unwrap_or_default(),
                sku: body.properties.sku.and_then(|s| s.name),
                access_policies: body.properties.access_policies.unwrap_or_default(),
                enable_rbac_authorization: body.properties.enable_rbac_authorization.unwrap_or(false),
                soft_delete_retention_days: body.properties.soft_delete_retention_in_days,
            };
            let vault = Vault::new(sub, &group.name, &name, state.tenant.tenant_id, spec)?;
            state.store.create_vault(&vault).await?;
            Ok(respond(StatusCode::OK, render(&state, &vault)))
        }
    }
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &scope_of(&sub, &rg, &name)?).await?;
    Ok(Json(render(&state, &live(&state, &sub, &rg, &name).await?)))
}

pub async fn list_in_group(State(state): State<AppState>, caller: Caller, Path((sub, rg)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &Scope::resource_group(&sub, &rg)?).await?;
    groups::existing(&state, &sub, &rg).await?;
    let all = state.store.list_vaults(&sub, Some(&rg), false).await?;
    Ok(Json(json!({"value": all.iter().map(|v| render(&state, v)).collect::<Vec<_>>()})))
}

pub async fn list_in_subscription(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    let access = CallerAccess::load(&state, &caller).await?;
    let all = state.store.list_vaults(&sub, None, false).await?;
    let visible = access.permitted(all, &format!("{TYPE}/read"), |v| scope_of(&sub, &v.resource_group, &v.name))?;
    Ok(Json(json!({"value": visible.iter().map(|v| render(&state, v)).collect::<Vec<_>>()})))
}

/// Soft delete: the vault and its secrets stay, recoverable, for its retention period.
pub async fn delete(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/delete"), &scope_of(&sub, &rg, &name)?).await?;
    live(&state, &sub, &rg, &name).await?;
    let now = caller.now;
    state
        .store
        .update_vault(&name, &|mut v| {
            Ok({
                v.soft_delete(now);
                v
            })
        })
        .await?;
    Ok(respond(StatusCode::OK, json!({})))
}

/// A deleted vault of this subscription, authorized for `action` at the subscription.
async fn deleted(state: &AppState, caller: &Caller, sub: &str, name: &str, action: &str) -> ApiResult<Vault> {
    let sub = state.subscription(sub)?;
    authorize(state, caller, action, &Scope::subscription(&sub)).await?;
    match state.store.get_vault(name).await {
        Ok(v) if v.deleted.is_some() && v.subscription_id == sub => Ok(v),
        Ok(_) | Err(kite_store::Error::NotFound(_)) => {
            Err(ApiError::not_found("ResourceNotFound", format!("There is no deleted vault named '{name}' in this subscription")))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn list_deleted(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> ApiResult<Json<Value>> {
    let id = state.subscription(&sub)?;
    authorize(&state, &caller, "Microsoft.KeyVault/deletedVaults/read", &Scope::subscription(&id)).await?;
    let all = state.store.list_vaults(&id, None, true).await?;
    Ok(Json(json!({"value": all.iter().map(render_deleted).collect::<Vec<_>>()})))
}

pub async fn get_deleted(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, _location, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render_deleted(&deleted(&state, &caller, &sub, &name, "Microsoft.KeyVault/deletedVaults/read").await?)))
}

/// Removes a deleted vault and every secret in it for good; the name is free again.
pub async fn purge(State(state): State<AppState>, caller: Caller, Path((sub, _location, name)): Path<(String, String, String)>) -> ApiResult<Response> {
    deleted(&state, &caller, &sub, &name, "Microsoft.KeyVault/locations/deletedVaults/purge/action").await?;
    state.store.purge_vault(&name).await?;
    Ok(respond(StatusCode::OK, json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyProps {
    access_policies: Vec<AccessPolicy>,
}

#[derive(Deserialize)]
pub struct PolicyBody {
    properties: PolicyProps,
}

/// `PUT …/vaults/{name}/accessPolicies/{add|remove|replace}`, as `az keyvault set-policy` and
/// `delete-policy` send it; answers with every policy the vault now has.
pub async fn access_policies(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name, kind)): Path<(String, String, String, String)>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    let kind: PolicyUpdate = kind.parse()?;
    authorize(&state, &caller, &format!("{TYPE}/accessPolicies/write"), &scope_of(&sub, &rg, &name)?).await?;
    live(&state, &sub, &rg, &name).await?;
    let tenant = state.tenant.tenant_id;
    let updated = state
        .store
        .update_vault(&name, &|mut v| {
            for p in &body.properties.access_policies {
                if p.tenant_id != tenant {
                    return Err(kite_store::Error::Invalid(format!("access policy tenantId {} is not this tenant ({tenant})", p.tenant_id)));
                }
                v.update_policy(p.clone(), kind)?;
            }
            Ok(v)
        })
        .await?;
    Ok(Json(json!({
        "id": format!("{}/accessPolicies/", updated.id()),
        "type": format!("{TYPE}/accessPolicies"),
        "location": updated.location,
        "properties": {"accessPolicies": updated.access_policies},
    })))
}

/// `managedHSMs` and `deletedManagedHSMs` listings: kite keeps none (az lists them beside vaults).
pub async fn no_managed_hsms(_caller: Caller) -> Json<Value> {
    Json(json!({"value": []}))
}
