//! Graph-shaped directory objects: service principals (with their app registration) and credentials.
//!
//! Who may do what follows Entra ID's defaults: any signed-in principal may register an app (seed
//! 000, "Users can register applications"); an app's credentials are managed by its owner (the
//! principal that created it) or by a holder of a directory role that grants it (Cloud Application
//! Administrator, Application Administrator, Global Administrator). Azure roles, Owner included,
//! grant nothing here. Changing a privileged app (its principal holds a directory role or an Azure
//! role that grants role assignments) takes Global Administrator, owners included.

use axum::extract::State;

use super::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::credential::{secret_end_date, CertificateCredential, PasswordCredential};
use kite_core::directory::{Application, Principal};
use kite_core::rbac::directory::{privileged_holding, APPLICATIONS_READ, CREDENTIALS_UPDATE, ROLE_ASSIGNMENTS_MANAGE};
use kite_core::rbac::engine::{AccessView, Snapshot};
use kite_core::rbac::RoleAssignment;
use kite_core::{suggest, Scope};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::authorization::{all_roles, may_assign, resolve_role};
use super::{respond, Body};
use crate::api::auth::{authorize, Caller};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

pub(crate) fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn render_principal(p: &Principal) -> Value {
    json!({
        "id": p.object_id,
        "appId": p.app_id,
        "displayName": p.display_name,
        "servicePrincipalType": p.service_principal_type,
        "appOwnerOrganizationId": p.tenant_id,
        "alternativeNames": p.alternative_names,
    })
}

fn render_credentials(app: &Application, now: OffsetDateTime, certificates: bool) -> Value {
    let list: Vec<Value> = if certificates {
        app.key_credentials
            .iter()
            .map(|c| {
                json!({"keyId": c.key_id, "displayName": c.display_name, "customKeyIdentifier": c.thumbprint,
                       "startDateTime": rfc3339(&c.start_date_time), "endDateTime": rfc3339(&c.end_date_time),
                       "type": "AsymmetricX509Cert", "usage": "Verify", "expired": now >= c.end_date_time})
            })
            .collect()
    } else {
        app.password_credentials
            .iter()
            .map(|c| {
                json!({"keyId": c.key_id, "displayName": c.display_name, "hint": c.hint, "customKeyIdentifier": null,
                       "secretText": null, "startDateTime": rfc3339(&c.start_date_time), "endDateTime": rfc3339(&c.end_date_time),
                       "expired": c.is_expired(now)})
            })
            .collect()
    };
    json!({ "value": list })
}

pub(crate) fn parse_end_date(raw: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    let Some(raw) = raw else { return Ok(None) };
    let rfc = time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(raw, &rfc) {
        return Ok(Some(t));
    }
    let date = time::Date::parse(raw, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::bad_request("InvalidEndDate", format!("end date '{raw}' is neither a date (2027-01-31) nor an RFC 3339 time")))?;
    Ok(Some(date.midnight().assume_utc()))
}

/// The credential a create or reset adds: a certificate when one is given, else a fresh secret.
enum NewCredential {
    Secret(kite_core::credential::NewSecret),
    Certificate(CertificateCredential),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRequest {
    #[serde(default)]
    years: Option<u32>,
    #[serde(default)]
    end_date_time: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    certificate_pem: Option<String>,
    #[serde(default)]
    append: bool,
}

fn new_credential(req: &CredentialRequest, now: OffsetDateTime) -> ApiResult<NewCredential> {
    match &req.certificate_pem {
        Some(pem) => Ok(NewCredential::Certificate(CertificateCredential::from_pem(pem, now)?)),
        None => {
            let end = secret_end_date(now, req.years, parse_end_date(req.end_date_time.as_deref())?)?;
            Ok(NewCredential::Secret(PasswordCredential::generate(now, end, req.display_name.clone())))
        }
    }
}

fn apply(mut app: Application, cred: &NewCredential, append: bool) -> Application {
    // Like `az ad sp credential reset`: without --append the new credential replaces those of its kind.
    match cred {
        NewCredential::Secret(s) => {
            if !append {
                app.password_credentials.clear();
            }
            app.password_credentials.push(s.credential.clone());
        }
        NewCredential::Certificate(c) => {
            if !append {
                app.key_credentials.clear();
            }
            app.key_credentials.push(c.clone());
        }
    }
    app
}

fn credential_answer(app: &Application, tenant: Uuid, cred: &NewCredential) -> Value {
    let mut out = json!({"appId": app.app_id, "displayName": app.display_name, "tenant": tenant});
    match cred {
        NewCredential::Secret(s) => {
            out["password"] = json!(s.secret_text);
            out["endDateTime"] = json!(rfc3339(&s.credential.end_date_time));
        }
        NewCredential::Certificate(c) => {
            out["certificateThumbprint"] = json!(c.thumbprint);
            out["endDateTime"] = json!(rfc3339(&c.end_date_time));
        }
    }
    out
}

/// Reads: the app's owner, or a directory role granting `action` at the tenant root.
pub(crate) async fn may_manage(state: &AppState, caller: &Caller, app: &Application, action: &str) -> ApiResult<()> {
    if app.owner == Some(caller.object_id) {
        return Ok(());
    }
    authorize(state, caller, action, &Scope::root()).await
}

/// Writes: as [`may_manage`], except that a privileged app (one whose principal could grant
/// roles) takes what granting roles takes, whoever owns it: a way to sign in as it is its power.
pub(crate) async fn may_change(state: &AppState, caller: &Caller, app: &Application, action: &str) -> ApiResult<()> {
    let filter = kite_store::AssignmentFilter { principal_id: Some(app.principal_id), all: true, ..Default::default() };
    let held = state.store.list_role_assignments(&filter).await?;
    let roles = Snapshot::new(state.store.list_role_definitions().await?, []);
    let Some((a, role)) = privileged_holding(&held, |id| roles.role(id)) else {
        return may_manage(state, caller, app, action).await;
    };
    authorize(state, caller, ROLE_ASSIGNMENTS_MANAGE, &Scope::root()).await.map_err(|mut e| {
        e.message = format!(
            "App '{}' ({}) is privileged: its principal holds '{}' at '{}', so changing it takes Global Administrator. {}",
            app.display_name, app.app_id, role.role_name, a.scope, e.message
        );
        e
    })
}

/// An app by client id or by its principal's object id.
pub(crate) async fn find_app(state: &AppState, id: &str) -> ApiResult<Application> {
    let missing = || {
        ApiError::not_found(
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present. List them with 'kite ad sp list'"),
        )
    };
    let uuid = Uuid::parse_str(id).map_err(|_| missing())?;
    if let Ok(app) = state.store.get_application(&uuid).await {
        return Ok(app);
    }
    let principal = state.store.get_principal(&uuid).await.map_err(|_| missing())?;
    state.store.get_application(&principal.app_id).await.map_err(|_| missing())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForRbac {
    display_name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(flatten)]
    credential: CredentialRequest,
}

pub async fn create_for_rbac(State(state): State<AppState>, caller: Caller, Body(req): Body<CreateForRbac>) -> ApiResult<Response> {
    let now = caller.now;
    let mut app = Application::new(&req.display_name, state.tenant.tenant_id, Some(caller.object_id), now)?;
    let cred = new_credential(&req.credential, now)?;
    app = apply(app, &cred, true);
    let mut assignments = Vec::new();
    if req.role.is_some() == req.scopes.is_empty() {
        return Err(ApiError::bad_request("InvalidRequestContent", "give --role and --scopes together (or neither)"));
    }
    if let Some(role) = &req.role {
        let role = resolve_role(&all_roles(&state).await?, role)?;
        for s in &req.scopes {
            let scope = Scope::parse(s)?;
            may_assign(&state, &caller, &role, &scope).await?;
            assignments.push(RoleAssignment {
                name: Uuid::new_v4(),
                scope,
                role_definition_id: role.name,
                principal_id: app.principal_id,
                principal_type: "ServicePrincipal".into(),
                description: None,
                created_on: now,
                created_by: Some(caller.object_id),
            });
        }
    }
    state.store.create_application(&app, &assignments).await?;
    tracing::info!(app = %app.app_id, by = %caller.object_id, assignments = assignments.len(), "service principal created");
    Ok(respond(StatusCode::CREATED, credential_answer(&app, state.tenant.tenant_id, &cred)))
}

pub async fn reset(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, Body(req): Body<CredentialRequest>) -> ApiResult<Response> {
    let app = find_app(&state, &id).await?;
    may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    let cred = new_credential(&req, caller.now)?;
    let app = state.store.update_application(&app.app_id, &|a| Ok(apply(a, &cred, req.append))).await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, append = req.append, "credentials reset");
    Ok(respond(StatusCode::OK, credential_answer(&app, state.tenant.tenant_id, &cred)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    cert: bool,
}

pub async fn list_credentials(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let app = find_app(&state, &id).await?;
    may_manage(&state, &caller, &app, APPLICATIONS_READ).await?;
    Ok(Json(render_credentials(&app, caller.now, q.cert)))
}

pub async fn delete_credential(State(state): State<AppState>, caller: Caller, Path((id, key_id)): Path<(String, Uuid)>) -> ApiResult<Response> {
    let app = find_app(&state, &id).await?;
    may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    let app = state
        .store
        .update_application(&app.app_id, &|mut a| {
            let before = a.password_credentials.len() + a.key_credentials.len();
            a.password_credentials.retain(|c| c.key_id != key_id);
            a.key_credentials.retain(|c| c.key_id != key_id);
            if before == a.password_credentials.len() + a.key_credentials.len() {
                return Err(kite_store::Error::NotFound(format!("the app has no credential with key id {key_id}")));
            }
            Ok(a)
        })
        .await?;
    state.clients.changed(state.store.as_ref()).await;
    Ok(respond(StatusCode::OK, json!({"appId": app.app_id, "keyId": key_id})))
}

#[derive(Deserialize)]
pub struct ResolveQuery {
    assignee: String,
}

/// `--assignee` as az takes it: an object id, a client (app) id, or a display name.
pub async fn resolve(State(state): State<AppState>, _caller: Caller, Query(q): Query<ResolveQuery>) -> ApiResult<Json<Value>> {
    let found = state.store.find_principals(&q.assignee).await?;
    match found.as_slice() {
        [one] => Ok(Json(render_principal(one))),
        [] => {
            let mut names: Vec<String> = state.store.list_applications().await?.into_iter().map(|a| a.display_name).collect();
            names.extend(state.store.list_identities(&state.default_subscription(), None).await?.into_iter().map(|m| m.name));
            let hint = match suggest::closest(&q.assignee, names.iter().map(String::as_str)) {
                Some(s) => format!(" Did you mean '{s}'?"),
                None => " Give an object id, a client id or a display name ('kite ad sp list', 'kite identity list').".into(),
            };
            Err(ApiError::bad_request("PrincipalNotFound", format!("Cannot find user or service principal in graph database for '{}'.{hint}", q.assignee)))
        }
        many => Err(ApiError::bad_request(
            "AmbiguousAssignee",
            format!(
                "'{}' matches {} principals; give one of their object ids instead: {}",
                q.assignee,
                many.len(),
                many.iter()
                    .map(|p| format!("{} ({})", p.object_id, p.alternative_names.last().cloned().unwrap_or(p.display_name.clone())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
