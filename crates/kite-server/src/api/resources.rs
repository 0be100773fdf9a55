//! `GET /subscriptions/{sub}/resources?$filter=resourceType eq '…'`: ARM's generic resource listing,
//! which `az keyvault show|set-policy|delete -n NAME` use to find a vault's resource group. Only
//! kite's own resource types are listed; a caller sees what it may read.

use axum::extract::State;
use axum::Json;
use kite_core::odata::{parse, Clause};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::{Caller, CallerAccess};
use crate::api::{Path, Query};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::vault::arm::scope_of;

#[derive(Deserialize)]
pub struct ResourcesQuery {
    #[serde(rename = "$filter")]
    filter: Option<String>,
}

/// What a filter asks for: `resourceType`, `name` and `resourceGroup` equal to given values
/// (case-insensitive, as ARM compares them).
#[derive(Default)]
struct Wanted {
    resource_type: Option<String>,
    name: Option<String>,
    resource_group: Option<String>,
}

impl Wanted {
    fn parse(filter: Option<&str>) -> ApiResult<Wanted> {
        let mut w = Wanted::default();
        for clause in parse(filter.unwrap_or(""))? {
            match &clause {
                Clause::Eq(p, v) if p.eq_ignore_ascii_case("resourceType") => w.resource_type = Some(v.clone()),
                Clause::Eq(p, v) if p.eq_ignore_ascii_case("name") => w.name = Some(v.clone()),
                Clause::Eq(p, v) if p.eq_ignore_ascii_case("resourceGroup") => w.resource_group = Some(v.clone()),
                other => {
                    return Err(ApiError::bad_request(
                        "InvalidFilter",
                        format!("kite filters resources by resourceType, name and resourceGroup ('eq'), not {}", other.describe()),
                    ))
                }
            }
        }
        Ok(w)
    }

    fn takes(&self, resource_type: &str, name: &str, resource_group: &str) -> bool {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have));
        matches(&self.resource_type, resource_type) && matches(&self.name, name) && matches(&self.resource_group, resource_group)
    }
}

pub async fn list(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>, Query(q): Query<ResourcesQuery>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    let wanted = Wanted::parse(q.filter.as_deref())?;
    let access = CallerAccess::load(&state, &caller).await?;
    let vaults = state.store.list_vaults(&sub, None, false).await?;
    let vaults = vaults.into_iter().filter(|v| wanted.takes(kite_core::vault::TYPE, &v.name, &v.resource_group)).collect();
    let action = format!("{}/read", kite_core::vault::TYPE);
    let mut out = Vec::new();
    for v in access.permitted(vaults, &action, |v| scope_of(&sub, &v.resource_group, &v.name))? {
        out.push(json!({"id": v.id(), "name": v.name, "type": kite_core::vault::TYPE, "location": v.location, "tags": v.tags}));
    }
    Ok(Json(json!({ "value": out })))
}
