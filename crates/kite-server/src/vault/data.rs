//! The Key Vault REST data plane (api-version 7.x) for requests whose Host is
//! `NAME.vault.<domain>`: secrets set, get (latest or a version), list (paged by `nextLink`), list
//! versions, update, delete, deleted secrets (get, list, recover, purge). Handlers are extract →
//! one `service` call → render.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use kite_core::vault::secret::{DeletedSecret, SecretChanges, SecretVersion, DEFAULT_PAGE};
use kite_core::vault::Vault;
use kite_store::{SecretPage, SecretValue};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::api::auth::Caller;
use crate::infra::state::AppState;
use crate::vault::error::{KvError, KvResult};
use crate::vault::service::{self, PageRequest, SetRequest};

/// The vault a request's Host names (put there by [`by_host`]).
#[derive(Clone, Debug)]
pub struct VaultHost(pub String);

/// The caller of a data-plane request: a kite token for the vault resource, or a 401 with the
/// challenge that says where to get one.
pub struct KvCaller {
    pub caller: Caller,
    pub vault: String,
}

impl FromRequestParts<AppState> for KvCaller {
    type Rejection = KvError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, KvError> {
        let vault = parts.extensions.get::<VaultHost>().map(|v| v.0.clone()).ok_or_else(|| KvError::bad_parameter("not a vault host"))?;
        let authority = format!("{}/{}", state.public_url, state.tenant.tenant_id);
        let resource = state.vault.resource();
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
            return Err(KvError::unauthorized("AKV10000: Request is missing a Bearer or PoP token.", &authority, &resource));
        };
        let with_slash = format!("{resource}/");
        let caller = Caller::from_token(parts, state, token, &[&resource, &with_slash])
            .map_err(|e| KvError::unauthorized(format!("AKV10022: {} (a token for '{resource}' is required)", e.message), &authority, &resource))?;
        Ok(KvCaller { caller, vault })
    }
}

/// `api-version` (7.x, required) and the paging parameters.
#[derive(Deserialize)]
pub struct KvQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    maxresults: Option<String>,
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
}

/// Checked query parameters.
pub struct Params {
    api_version: String,
    page: PageRequest,
}

impl FromRequestParts<AppState> for Params {
    type Rejection = KvError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, KvError> {
        let axum::extract::Query(q) = axum::extract::Query::<KvQuery>::try_from_uri(&parts.uri)
            .map_err(|e| KvError::bad_parameter(format!("The query string is invalid: {}", e.body_text())))?;
        let api_version = q.api_version.ok_or_else(|| KvError::bad_parameter("The api-version query parameter is missing; this server speaks 7.0 to 7.6"))?;
        let minor = api_version.strip_prefix("7.").and_then(|rest| rest.split('-').next()).and_then(|m| m.parse::<u8>().ok());
        if minor.is_none() {
            return Err(KvError::bad_parameter(format!(
                "The specified version ({}) is not recognized; this server speaks 7.0 to 7.6",
                api_version.chars().take(20).collect::<String>()
            )));
        }
        let limit = match q.maxresults.as_deref() {
            None => DEFAULT_PAGE,
            Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=DEFAULT_PAGE).contains(n)).ok_or_else(|| {
                KvError::bad_parameter(format!("maxresults '{}' is invalid: give 1 to {DEFAULT_PAGE}", raw.chars().take(20).collect::<String>()))
            })?,
        };
        let after = match q.skiptoken {
            None => String::new(),
            Some(t) if t.len() <= 256 => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| KvError::bad_parameter("$skiptoken is not one this server issued"))?,
            Some(_) => return Err(KvError::bad_parameter("$skiptoken is not one this server issued")),
        };
        Ok(Params { api_version, page: PageRequest { after, limit } })
    }
}

/// A JSON body whose rejection is a Key Vault error.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(KvError))]
pub struct KvBody<T>(pub T);

/// serde's text can quote what was sent (a secret value among it): only where it broke is kept.
impl From<JsonRejection> for KvError {
    fn from(r: JsonRejection) -> KvError {
        let text = r.body_text();
        let at = text.rfind(" at line ").map(|i| text[i..].to_string()).unwrap_or_default();
        KvError::new(
            r.status(),
            "BadParameter",
            format!("The request body is not a Key Vault secret request (JSON with value, contentType, tags, attributes: enabled, nbf, exp){at}"),
        )
    }
}

fn base(state: &AppState, v: &Vault) -> String {
    state.vault.vault_uri(&v.name).trim_end_matches('/').to_string()
}

fn attributes(v: &Vault, s: &SecretVersion) -> Value {
    let mut a = serde_json::to_value(&s.attributes).unwrap_or_default();
    a["recoveryLevel"] = json!("Recoverable+Purgeable");
    a["recoverableDays"] = json!(v.soft_delete_retention_days);
    a
}

/// A SecretBundle; `value` only where Key Vault returns it (set, get).
fn bundle(state: &AppState, v: &Vault, s: &SecretVersion, value: Option<&SecretValue>) -> Value {
    let mut b = json!({
        "id": format!("{}/secrets/{}/{}", base(state, v), s.name, s.version),
        "attributes": attributes(v, s),
        "tags": s.tags,
    });
    if let Some(ct) = &s.content_type {
        b["contentType"] = json!(ct);
    }
    if let Some(value) = value {
        b["value"] = json!(value.0);
    }
    b
}

/// A SecretItem: a listing shows ids without version, a versions listing with.
fn item(state: &AppState, v: &Vault, s: &SecretVersion, with_version: bool) -> Value {
    let id = if with_version { format!("{}/secrets/{}/{}", base(state, v), s.name, s.version) } else { format!("{}/secrets/{}", base(state, v), s.name) };
    let mut b = json!({"id": id, "attributes": attributes(v, s), "tags": s.tags});
    if let Some(ct) = &s.content_type {
        b["contentType"] = json!(ct);
    }
    b
}

fn deleted_fields(state: &AppState, v: &Vault, d: &DeletedSecret, mut b: Value) -> Value {
    b["recoveryId"] = json!(format!("{}/deletedsecrets/{}", base(state, v), d.latest.name));
    b["deletedDate"] = json!(d.deleted_date);
    b["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    b
}

fn page<T>(state: &AppState, v: &Vault, p: &Params, path: &str, found: &SecretPage<T>, render: impl Fn(&T) -> Value) -> Value {
    let next = found.next_after.as_ref().map(|after| {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after);
        format!("{}{path}?api-version={}&$skiptoken={token}&maxresults={}", base(state, v), p.api_version, p.page.limit)
    });
    json!({"value": found.items.iter().map(render).collect::<Vec<_>>(), "nextLink": next})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetBody {
    value: String,
    #[serde(flatten)]
    changes: SecretChanges,
}

async fn set(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>, KvBody(body): KvBody<SetBody>) -> KvResult<Json<Value>> {
    let value = SecretValue(body.value);
    let (vault, s) = service::set(&state, &c.caller, &c.vault, &name, SetRequest { value: value.clone(), changes: body.changes }).await?;
    // Key Vault echoes the value it stored.
    Ok(Json(bundle(&state, &vault, &s, Some(&value))))
}

async fn get_latest(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>) -> KvResult<Json<Value>> {
    let (vault, s, value) = service::get(&state, &c.caller, &c.vault, &name, None).await?;
    Ok(Json(bundle(&state, &vault, &s, Some(&value))))
}

async fn get_version(State(state): State<AppState>, c: KvCaller, _p: Params, Path((name, version)): Path<(String, String)>) -> KvResult<Json<Value>> {
    let (vault, s, value) = service::get(&state, &c.caller, &c.vault, &name, Some(&version)).await?;
    Ok(Json(bundle(&state, &vault, &s, Some(&value))))
}

async fn list(State(state): State<AppState>, c: KvCaller, p: Params) -> KvResult<Json<Value>> {
    let (vault, found) = service::list(&state, &c.caller, &c.vault, None, PageRequest { after: p.page.after.clone(), limit: p.page.limit }).await?;
    Ok(Json(page(&state, &vault, &p, "/secrets", &found, |s| item(&state, &vault, s, false))))
}

async fn versions(State(state): State<AppState>, c: KvCaller, p: Params, Path(name): Path<String>) -> KvResult<Json<Value>> {
    let (vault, found) = service::list(&state, &c.caller, &c.vault, Some(&name), PageRequest { after: p.page.after.clone(), limit: p.page.limit }).await?;
    Ok(Json(page(&state, &vault, &p, &format!("/secrets/{name}/versions"), &found, |s| item(&state, &vault, s, true))))
}

async fn update_latest(
    State(state): State<AppState>,
    c: KvCaller,
    _p: Params,
    Path(name): Path<String>,
    KvBody(changes): KvBody<SecretChanges>,
) -> KvResult<Json<Value>> {
    let (vault, s) = service::update(&state, &c.caller, &c.vault, &name, None, changes).await?;
    Ok(Json(bundle(&state, &vault, &s, None)))
}

async fn update_version(
    State(state): State<AppState>,
    c: KvCaller,
    _p: Params,
    Path((name, version)): Path<(String, String)>,
    KvBody(changes): KvBody<SecretChanges>,
) -> KvResult<Json<Value>> {
    let (vault, s) = service::update(&state, &c.caller, &c.vault, &name, Some(&version), changes).await?;
    Ok(Json(bundle(&state, &vault, &s, None)))
}

async fn delete(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>) -> KvResult<Json<Value>> {
    let (vault, d) = service::delete(&state, &c.caller, &c.vault, &name).await?;
    Ok(Json(deleted_fields(&state, &vault, &d, bundle(&state, &vault, &d.latest, None))))
}

async fn get_deleted(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>) -> KvResult<Json<Value>> {
    let (vault, d) = service::get_deleted(&state, &c.caller, &c.vault, &name).await?;
    Ok(Json(deleted_fields(&state, &vault, &d, bundle(&state, &vault, &d.latest, None))))
}

async fn list_deleted(State(state): State<AppState>, c: KvCaller, p: Params) -> KvResult<Json<Value>> {
    let (vault, found) = service::list_deleted(&state, &c.caller, &c.vault, PageRequest { after: p.page.after.clone(), limit: p.page.limit }).await?;
    Ok(Json(page(&state, &vault, &p, "/deletedsecrets", &found, |d| deleted_fields(&state, &vault, d, item(&state, &vault, &d.latest, false)))))
}

async fn recover(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>) -> KvResult<Json<Value>> {
    let (vault, s) = service::recover(&state, &c.caller, &c.vault, &name).await?;
    Ok(Json(bundle(&state, &vault, &s, None)))
}

async fn purge(State(state): State<AppState>, c: KvCaller, _p: Params, Path(name): Path<String>) -> KvResult<StatusCode> {
    service::purge(&state, &c.caller, &c.vault, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unknown(c: KvCaller) -> KvError {
    KvError::new(StatusCode::NOT_FOUND, "NotFound", format!("Vault '{}' has no such operation (this server serves the secrets API)", c.vault))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list))
        .route("/secrets/{name}", get(get_latest).put(set).patch(update_latest).delete(delete))
        .route("/secrets/{name}/versions", get(versions))
        .route("/secrets/{name}/{version}", get(get_version).patch(update_version))
        .route("/deletedsecrets", get(list_deleted))
        .route("/deletedsecrets/{name}", get(get_deleted).delete(purge))
        .route("/deletedsecrets/{name}/recover", post(recover))
        .fallback(unknown)
}

/// Sends requests for `NAME.vault.<domain>` to the data plane (`vault_routes`), everything else
/// on. A trailing slash (`/secrets/NAME/`, as the SDKs send it) is dropped first.
pub async fn by_host(state: AppState, vault_routes: Router, mut req: Request, next: Next) -> Response {
    let host = req.uri().host().map(str::to_string).or_else(|| req.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let Some(vault) = host.and_then(|h| state.vault.vault_of_host(&h)) else {
        return next.run(req).await;
    };
    req.extensions_mut().insert(VaultHost(vault));
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/').to_string();
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed,
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
    match vault_routes.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;

    #[tokio::test]
    async fn a_malformed_body_is_refused_without_quoting_what_was_sent() {
        let req = Request::builder()
            .method("PUT")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"value": "hunter2-secret", "attributes": {"enabled": "hunter3-secret"}}"#))
            .unwrap();
        let Err(rejection) = KvBody::<SetBody>::from_request(req, &()).await else { panic!("a string is not a boolean") };
        assert_eq!(rejection.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!rejection.message.contains("hunter") && rejection.message.contains("at line 1"), "{}", rejection.message);
    }
}
