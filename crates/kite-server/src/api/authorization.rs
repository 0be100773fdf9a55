//! `{scope}/providers/Microsoft.Authorization/{roleDefinitions|roleAssignments|checkAccess}` at any scope.
//!
//! ARM nests these under every scope, so one dispatcher splits the path at the provider segment and
//! routes on what follows.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;

use super::Query;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kite_core::odata::{self, Clause, Term};
use kite_core::rbac::directory::{directory_roles, is_directory_action, ROLE_ASSIGNMENTS_MANAGE, ROLE_ASSIGNMENTS_READ};
use kite_core::rbac::{builtin_roles, ActionKind, RoleAssignment, RoleDefinition, RoleType};
use kite_core::scope::ScopeLevel;
use kite_core::{suggest, Scope};
use kite_store::AssignmentFilter;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{groups, respond};
use crate::api::auth::{authorize, decide, Caller};
use crate::api::listing::invalid_filter;
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

const PROVIDER: &str = "/providers/microsoft.authorization/";

fn definition_id(state: &AppState, id: &Uuid) -> String {
    format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{id}", state.default_subscription())
}

pub fn render_definition(state: &AppState, def: &RoleDefinition) -> Value {
    json!({
        "id": definition_id(state, &def.name),
        "name": def.name,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": def.role_name,
            "type": def.role_type,
            "description": def.description,
            "assignableScopes": def.assignable_scopes,
            "permissions": def.permissions,
        }
    })
}

async fn render_assignment(state: &AppState, a: &RoleAssignment, roles: &[RoleDefinition]) -> Value {
    let role_name = roles.iter().find(|r| r.name == a.role_definition_id).map(|r| r.role_name.clone());
    let principal_name = state.store.get_principal(&a.principal_id).await.ok().map(|p| p.display_name);
    json!({
        "id": a.id(),
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition_id(state, &a.role_definition_id),
            "roleDefinitionName": role_name,
            "principalId": a.principal_id,
            "principalName": principal_name,
            "principalType": a.principal_type,
            "scope": a.scope,
            "description": a.description,
            "createdOn": a.created_on.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "createdBy": a.created_by,
        }
    })
}

/// Built-in Azure roles, directory roles and this tenant's custom roles, leaving out any stored
/// custom role that would take over a built-in one (it never takes effect; see `bootstrap::report_shadowing_roles`).
pub async fn all_roles(state: &AppState) -> ApiResult<Vec<RoleDefinition>> {
    let mut roles: Vec<RoleDefinition> = builtin_roles().iter().chain(directory_roles()).cloned().collect();
    roles.extend(state.store.list_role_definitions().await?.into_iter().filter(|r| r.check_custom().is_ok()));
    Ok(roles)
}

/// A role by GUID, full definition ID or name (case-insensitive); unknown names get a suggestion.
pub fn resolve_role(roles: &[RoleDefinition], needle: &str) -> ApiResult<RoleDefinition> {
    let tail = needle.trim().rsplit('/').next().unwrap_or(needle);
    let found = match Uuid::parse_str(tail) {
        Ok(id) => roles.iter().find(|r| r.name == id),
        Err(_) => roles.iter().find(|r| r.role_name.eq_ignore_ascii_case(needle.trim())),
    };
    found.cloned().ok_or_else(|| {
        let hint = match suggest::closest(needle, roles.iter().map(|r| r.role_name.as_str())) {
            Some(s) => format!(" Did you mean '{s}'?"),
            None => " List the roles with 'kite role definition list --query \"[].roleName\" -o tsv'.".into(),
        };
        ApiError::bad_request("RoleDefinitionDoesNotExist", format!("The role '{needle}' does not exist.{hint}"))
    })
}

fn parse_scope(raw: &str) -> ApiResult<Scope> {
    Ok(Scope::parse(if raw.is_empty() { "/" } else { raw })?)
}

/// Routes everything under `…/providers/Microsoft.Authorization/`; other unknown paths get 404.
pub async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    caller: Result<Caller, ApiError>,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(at) = path.to_ascii_lowercase().find(PROVIDER) else {
        return ApiError::not_found("NotFound", format!("No route for {method} {path}")).into_response();
    };
    let (scope_raw, tail) = (&path[..at], &path[at + PROVIDER.len()..]);
    let parts: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let result = async {
        let caller = caller?;
        let scope = parse_scope(scope_raw)?;
        match (method.clone(), parts.as_slice()) {
            (Method::GET, [kind]) if kind.eq_ignore_ascii_case("roleDefinitions") => list_definitions(&state, &caller, &scope, &query).await,
            (Method::GET, [kind, id]) if kind.eq_ignore_ascii_case("roleDefinitions") => get_definition(&state, &caller, &scope, id).await,
            (Method::PUT, [kind, id]) if kind.eq_ignore_ascii_case("roleDefinitions") => put_definition(&state, &caller, id, &body).await,
            (Method::DELETE, [kind, id]) if kind.eq_ignore_ascii_case("roleDefinitions") => delete_definition(&state, &caller, id).await,
            (Method::GET, [kind]) if kind.eq_ignore_ascii_case("roleAssignments") => list_assignments(&state, &caller, &scope, &query).await,
            (Method::PUT, [kind, name]) if kind.eq_ignore_ascii_case("roleAssignments") => put_assignment(&state, &caller, scope, name, &body).await,
            (Method::DELETE, [kind, name]) if kind.eq_ignore_ascii_case("roleAssignments") => delete_assignment(&state, &caller, name).await,
            (Method::POST, [kind]) if kind.eq_ignore_ascii_case("checkAccess") => check_access(&state, &caller, &scope, &body).await,
            _ => Err(ApiError::not_found("NotFound", format!("No route for {method} {path}"))),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("InvalidRequestContent", format!("The request content was invalid: {e}")))
}

async fn list_definitions(state: &AppState, caller: &Caller, scope: &Scope, query: &HashMap<String, String>) -> ApiResult<Response> {
    authorize(state, caller, "Microsoft.Authorization/roleDefinitions/read", scope).await?;
    let roles = all_roles(state).await?;
    let chosen: Vec<&RoleDefinition> = match (query.get("$filter"), query.get("roleName")) {
        (Some(filter), _) => {
            let wanted = definition_filter(filter)?;
            roles.iter().filter(|r| wanted.iter().all(|w| w(r))).collect()
        }
        (None, Some(name)) => match roles.iter().find(|r| r.role_name.eq_ignore_ascii_case(name)) {
            Some(role) => vec![role],
            // A GUID resolves by ID but names no role; either way the caller hears what exists.
            None => {
                return Err(resolve_role(&roles, name).err().unwrap_or_else(|| {
                    ApiError::bad_request("RoleDefinitionDoesNotExist", format!("No role is named '{name}'; roleName takes a role's name, not its ID"))
                }))
            }
        },
        (None, None) => roles.iter().collect(),
    };
    let custom_only = query.get("custom").is_some_and(|v| v == "true");
    let value: Vec<Value> = chosen.into_iter().filter(|r| !custom_only || r.role_type == RoleType::CustomRole).map(|r| render_definition(state, r)).collect();
    Ok(respond(StatusCode::OK, json!({ "value": value })))
}

type DefinitionTest = Box<dyn Fn(&RoleDefinition) -> bool + Send>;

/// ARM's role definition filters: `roleName eq '…'` (as ARM, any case) and `type eq 'BuiltInRole|CustomRole'`.
fn definition_filter(filter: &str) -> ApiResult<Vec<DefinitionTest>> {
    let mut tests: Vec<DefinitionTest> = Vec::new();
    for clause in odata::parse(filter).map_err(invalid_filter)? {
        match clause {
            Clause::Eq(p, name) if p.eq_ignore_ascii_case("roleName") => tests.push(Box::new(move |r| r.role_name.eq_ignore_ascii_case(&name))),
            Clause::Eq(p, kind) if p.eq_ignore_ascii_case("type") => {
                let kind = match kind.to_ascii_lowercase().as_str() {
                    "builtinrole" => RoleType::BuiltInRole,
                    "customrole" => RoleType::CustomRole,
                    _ => return Err(invalid_filter(format!("Invalid $filter '{filter}': type is 'BuiltInRole' or 'CustomRole', not '{kind}'"))),
                };
                tests.push(Box::new(move |r| r.role_type == kind));
            }
            other => {
                return Err(invalid_filter(format!(
                    "Invalid $filter '{filter}': '{}' is not supported on role definitions; use roleName eq '…' or type eq 'BuiltInRole|CustomRole'",
                    other.describe()
                )))
            }
        }
    }
    Ok(tests)
}

async fn get_definition(state: &AppState, caller: &Caller, scope: &Scope, id: &str) -> ApiResult<Response> {
    authorize(state, caller, "Microsoft.Authorization/roleDefinitions/read", scope).await?;
    let role = resolve_role(&all_roles(state).await?, id)?;
    Ok(respond(StatusCode::OK, render_definition(state, &role)))
}

async fn put_definition(state: &AppState, caller: &Caller, id: &str, body: &Bytes) -> ApiResult<Response> {
    let raw: Value = json_body(body)?;
    let mut props = raw.get("properties").cloned().unwrap_or(raw);
    if let Value::Object(m) = &mut props {
        m.insert("name".into(), Value::String(id.to_string()));
    }
    let same_name = |m: String| ApiError::new(StatusCode::CONFLICT, "RoleDefinitionWithSameNameExists", m);
    let def = RoleDefinition::custom_from_json(&props).map_err(|e| match e {
        kite_core::Error::Conflict(m) => same_name(m),
        other => other.into(),
    })?;
    // As in Azure: the right to write definitions at every scope the role can be assigned at.
    for s in &def.assignable_scopes {
        authorize(state, caller, "Microsoft.Authorization/roleDefinitions/write", &Scope::parse(s)?).await?;
    }
    state.store.create_role_definition(&def).await.map_err(|e| match e {
        kite_store::Error::Conflict(m) => same_name(m),
        other => other.into(),
    })?;
    Ok(respond(StatusCode::CREATED, render_definition(state, &def)))
}

async fn delete_definition(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Response> {
    // A stored role that shadows a built-in one never takes effect, but it must still be removable.
    let shadows: Vec<RoleDefinition> = state.store.list_role_definitions().await?.into_iter().filter(|r| r.check_custom().is_err()).collect();
    let role = match resolve_role(&shadows, id) {
        Ok(shadow) => shadow,
        Err(_) => resolve_role(&all_roles(state).await?, id)?,
    };
    if role.role_type != RoleType::CustomRole {
        return Err(ApiError::bad_request("CannotDeleteBuiltInRole", format!("'{}' is a built-in role and cannot be deleted", role.role_name)));
    }
    for s in &role.assignable_scopes {
        authorize(state, caller, "Microsoft.Authorization/roleDefinitions/delete", &Scope::parse(s)?).await?;
    }
    let def = state.store.delete_role_definition(&role.name).await?;
    Ok(respond(StatusCode::OK, render_definition(state, &def)))
}

async fn list_assignments(state: &AppState, caller: &Caller, scope: &Scope, query: &HashMap<String, String>) -> ApiResult<Response> {
    // Directory roles are assigned at the root: who may read them there may list it.
    let directory_reader =
        *scope.level() == ScopeLevel::Root && decide(state, caller.object_id, ROLE_ASSIGNMENTS_READ, ActionKind::Action, scope).await?.allowed;
    if !directory_reader {
        authorize(state, caller, "Microsoft.Authorization/roleAssignments/read", scope).await?;
    }
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true");
    // kite's CLI names what it wants; ARM's clients send `$filter` or nothing at all.
    let kite_form = ["all", "atScope", "includeInherited", "principalId", "role"].iter().any(|k| query.contains_key(*k));
    let filter = match query.get("$filter") {
        Some(f) => assignment_filter(f, scope)?,
        // ARM without a filter: the assignments at, above and below the scope.
        None if !kite_form => AssignmentFilter { all: true, ..Default::default() },
        None => {
            let principal_id = query.get("principalId").map(|p| principal_guid(p)).transpose()?;
            let narrowed = !matches!(scope.level(), ScopeLevel::Root | ScopeLevel::Subscription) || flag("atScope");
            AssignmentFilter { principal_id, scope: narrowed.then(|| scope.clone()), include_inherited: flag("includeInherited"), all: flag("all") }
        }
    };
    let roles = all_roles(state).await?;
    let role_filter = match query.get("role") {
        Some(r) => Some(resolve_role(&roles, r)?.name),
        None => None,
    };
    let mut value = Vec::new();
    for a in state.store.list_role_assignments(&filter).await? {
        // A principal's assignments anywhere are listed only where they bear on the scope asked about.
        let related = filter.scope.is_some() || a.scope.is_within(scope) || scope.is_within(&a.scope);
        if related && role_filter.is_none_or(|r| r == a.role_definition_id) {
            value.push(render_assignment(state, &a, &roles).await);
        }
    }
    Ok(respond(StatusCode::OK, json!({ "value": value })))
}

fn principal_guid(p: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(p).map_err(|_| ApiError::bad_request("InvalidPrincipalId", format!("principalId '{p}' is not a GUID")))
}

/// ARM's role assignment filters: `atScope()` (the scope and those above it, not below),
/// `principalId eq '…'` and `assignedTo('…')` (kite has no groups, so the same); without
/// `atScope()` a principal's assignments at, above and below the scope.
fn assignment_filter(filter: &str, scope: &Scope) -> ApiResult<AssignmentFilter> {
    let mut out = AssignmentFilter { all: true, ..Default::default() };
    for clause in odata::parse(filter).map_err(invalid_filter)? {
        let principal = match &clause {
            Clause::Call(f, args) if f.eq_ignore_ascii_case("atScope") && args.is_empty() => {
                (out.scope, out.include_inherited) = (Some(scope.clone()), true);
                continue;
            }
            Clause::Eq(p, id) if p.eq_ignore_ascii_case("principalId") => id,
            Clause::Call(f, args) if f.eq_ignore_ascii_case("assignedTo") => match args.as_slice() {
                [Term::Literal(id)] => id,
                _ => return Err(invalid_filter(format!("Invalid $filter '{filter}': assignedTo takes one quoted object ID"))),
            },
            other => {
                return Err(invalid_filter(format!(
                    "Invalid $filter '{filter}': '{}' is not supported on role assignments; use atScope(), principalId eq '…' or assignedTo('…')",
                    other.describe()
                )))
            }
        };
        let id = principal_guid(principal)?;
        if out.principal_id.is_some_and(|p| p != id) {
            return Err(invalid_filter(format!("Invalid $filter '{filter}': it names two different principals")));
        }
        out.principal_id = Some(id);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentProps {
    role_definition_id: String,
    principal_id: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct AssignmentBody {
    properties: AssignmentProps,
}

async fn put_assignment(state: &AppState, caller: &Caller, scope: Scope, name: &str, body: &Bytes) -> ApiResult<Response> {
    let name = Uuid::parse_str(name)
        .map_err(|_| ApiError::bad_request("InvalidRoleAssignmentId", format!("The role assignment ID '{name}' is not valid: use a GUID")))?;
    let body: AssignmentBody = json_body(body)?;
    let principal_id = Uuid::parse_str(&body.properties.principal_id)
        .map_err(|_| ApiError::bad_request("InvalidPrincipalId", format!("principalId '{}' is not a GUID", body.properties.principal_id)))?;
    let role = resolve_role(&all_roles(state).await?, &body.properties.role_definition_id)?;
    may_assign(state, caller, &role, &scope).await?;
    let principal = state.store.get_principal(&principal_id).await.map_err(|e| match e {
        kite_store::Error::NotFound(_) => ApiError::bad_request(
            "PrincipalNotFound",
            format!(
                "Principal {principal_id} does not exist in the directory {}. Find it with 'kite ad sp list' or 'kite identity list'",
                state.tenant.tenant_id
            ),
        ),
        other => other.into(),
    })?;
    if let (Some(sub), Some(rg)) = (scope.subscription_id(), scope.resource_group_name()) {
        groups::existing(state, &state.subscription(sub)?, rg).await?;
    }
    let a = RoleAssignment {
        name,
        scope,
        role_definition_id: role.name,
        principal_id,
        principal_type: "ServicePrincipal".into(),
        description: body.properties.description,
        created_on: caller.now,
        created_by: Some(caller.object_id),
    };
    state.store.create_role_assignment(&a).await?;
    tracing::info!(assignment = %a.name, role = %role.role_name, principal = %principal.object_id, scope = %a.scope, by = %caller.object_id, "role assigned");
    Ok(respond(StatusCode::CREATED, render_assignment(state, &a, std::slice::from_ref(&role)).await))
}

/// Whether `caller` may assign `role` at `scope`: an Azure role needs `roleAssignments/write` there
/// and a scope the role allows; a directory role is granted only at the tenant root, by a holder
/// of a directory role that manages role assignments (Global Administrator).
pub async fn may_assign(state: &AppState, caller: &Caller, role: &RoleDefinition, scope: &Scope) -> ApiResult<()> {
    if role.role_type == RoleType::DirectoryRole {
        if *scope.level() != ScopeLevel::Root {
            return Err(ApiError::bad_request(
                "InvalidRoleAssignmentScope",
                format!("'{}' is a directory role: assign it at the tenant root with --scope /, not at '{scope}'", role.role_name),
            ));
        }
        return authorize(state, caller, ROLE_ASSIGNMENTS_MANAGE, scope).await;
    }
    if !role.is_assignable_at(scope) {
        return Err(ApiError::bad_request(
            "InvalidRoleAssignmentScope",
            format!("Role '{}' can only be assigned at {:?}, not at '{scope}'", role.role_name, role.assignable_scopes),
        ));
    }
    authorize(state, caller, "Microsoft.Authorization/roleAssignments/write", scope).await
}

async fn delete_assignment(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Response> {
    let name =
        Uuid::parse_str(name).map_err(|_| ApiError::bad_request("InvalidRoleAssignmentId", format!("'{name}' is not a role assignment name (a GUID)")))?;
    let a = state.store.get_role_assignment(&name).await.map_err(|e| match e {
        kite_store::Error::NotFound(_) => ApiError::not_found("RoleAssignmentNotFound", format!("Role assignment {name} does not exist")),
        other => other.into(),
    })?;
    let roles = all_roles(state).await?;
    let directory = roles.iter().any(|r| r.name == a.role_definition_id && r.role_type == RoleType::DirectoryRole);
    let action = if directory { ROLE_ASSIGNMENTS_MANAGE } else { "Microsoft.Authorization/roleAssignments/delete" };
    authorize(state, caller, action, &a.scope).await?;
    let a = state.store.delete_role_assignment(&name).await?;
    Ok(respond(StatusCode::OK, render_assignment(state, &a, &roles).await))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckBody {
    principal_id: Uuid,
    action: String,
    #[serde(default)]
    data_action: bool,
}

async fn check_access(state: &AppState, caller: &Caller, scope: &Scope, body: &Bytes) -> ApiResult<Response> {
    let body: CheckBody = json_body(body)?;
    kite_core::rbac::action::validate(&body.action)?;
    if body.principal_id != caller.object_id {
        // Who holds directory roles is read in the directory, not through Azure roles.
        if is_directory_action(&body.action) {
            authorize(state, caller, ROLE_ASSIGNMENTS_READ, &Scope::root()).await?;
        } else {
            authorize(state, caller, "Microsoft.Authorization/roleAssignments/read", scope).await?;
        }
    }
    let kind = if body.data_action { ActionKind::DataAction } else { ActionKind::Action };
    let decision = decide(state, body.principal_id, &body.action, kind, scope).await?;
    Ok(respond(StatusCode::OK, serde_json::to_value(decision).unwrap_or_default()))
}
