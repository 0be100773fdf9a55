//! Microsoft Graph as the Azure CLI calls it (azure-cli's `role/_msgrpah/_graph_client.py`):
//! applications, service principals, their passwords and federated credentials, `$filter`,
//! `directoryObjects/getByIds`, OData's `@odata.context`/`value` shape and Graph's error shape.
//!
//! Served at `/v1.0/…` and under the Graph resource the cloud metadata names (`/graph/v1.0/…`).
//! Tokens for that resource are accepted here and nowhere else; management tokens are accepted
//! here too (kite's own CLI). Who may do what is [`super::directory`]'s: any signed-in principal
//! reads the directory and registers apps; credentials are changed by the app's owner or a
//! directory role, and a privileged app's only by a Global Administrator. Credential metadata
//! (key IDs, hints, dates; never secrets) is shown to those who may manage the app, to others as `[]`.
//!
//! kite keeps an app and its service principal as one object: an application's `id` is its
//! `appId`, the principal exists from the app's creation (`POST /servicePrincipals` answers it),
//! and deleting either deletes both.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kite_core::credential::{secret_end_date, CertificateCredential, PasswordCredential};
use kite_core::directory::{Application, Principal, PrincipalKind};
use kite_core::odata::{self, Clause, Term};
use kite_core::rbac::directory::{APPLICATIONS_DELETE, APPLICATIONS_READ, CREDENTIALS_UPDATE};
use kite_core::rbac::ActionKind;
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::{decide, Caller};
use super::directory::{find_app, may_change, parse_end_date, rfc3339};
use super::identities::FicProps;
use super::{Body, Path, Query};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;

/// The most IDs one `getByIds` takes, as Graph documents.
const MAX_IDS: usize = 1000;
/// The most certificates one app holds here.
const MAX_KEYS: usize = 20;

fn check_key_count(n: usize) -> GraphResult<()> {
    if n > MAX_KEYS {
        return Err(graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", format!("{n} key credentials were given; an app holds at most {MAX_KEYS}")));
    }
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1.0/applications", get(list_applications).post(create_application))
        .route("/v1.0/applications/{id}", get(get_application).patch(patch_object).delete(delete_object))
        .route("/v1.0/applications/{id}/addPassword", post(add_password))
        .route("/v1.0/applications/{id}/removePassword", post(remove_password))
        .route("/v1.0/applications/{id}/addKey", post(add_key))
        .route("/v1.0/applications/{id}/federatedIdentityCredentials", get(list_fics).post(create_fic))
        .route("/v1.0/applications/{id}/federatedIdentityCredentials/{name}", get(get_fic).delete(delete_fic))
        .route("/v1.0/servicePrincipals", get(list_service_principals).post(create_service_principal))
        .route("/v1.0/servicePrincipals/{id}", get(get_service_principal).patch(patch_object).delete(delete_object))
        .route("/v1.0/servicePrincipals/{id}/addPassword", post(add_password))
        .route("/v1.0/servicePrincipals/{id}/removePassword", post(remove_password))
        .route("/v1.0/directoryObjects/getByIds", post(get_by_ids))
}

/// Graph's error: `{"error": {"code", "message", "innerError": {"request-id"}}}`.
#[derive(Debug)]
pub struct GraphError(ApiError);

type GraphResult<T> = Result<T, GraphError>;

impl<E: Into<ApiError>> From<E> for GraphError {
    fn from(e: E) -> Self {
        GraphError(e.into())
    }
}

fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> GraphError {
    GraphError(ApiError::new(status, code, message))
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (code, message) = match e.code.as_str() {
            // az recognises Graph's wording ("Insufficient privileges") and says what to do.
            "AuthorizationFailed" => ("Authorization_RequestDenied".to_string(), format!("Insufficient privileges to complete the operation. {}", e.message)),
            "NotFound" => ("Request_ResourceNotFound".to_string(), e.message),
            _ => (e.code, e.message),
        };
        (e.status, Json(json!({"error": {"code": code, "message": message, "innerError": {"request-id": Uuid::new_v4()}}}))).into_response()
    }
}

/// A caller of the Graph surface: a token for the Graph resource or for the management API.
pub struct GraphCaller(pub Caller);

impl FromRequestParts<AppState> for GraphCaller {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let graph = super::cloud::graph_resource(&state.public_url);
        let also = [graph.trim_end_matches('/').to_string(), graph];
        Ok(GraphCaller(Caller::authenticate(parts, state, &also)?))
    }
}

/// Who sees credential metadata: an app's owner, or a holder of a directory role that reads apps.
struct Viewer {
    caller: Uuid,
    directory_reader: bool,
}

impl Viewer {
    async fn load(state: &AppState, caller: &Caller) -> GraphResult<Viewer> {
        let decision = decide(state, caller.object_id, APPLICATIONS_READ, ActionKind::Action, &Scope::root()).await?;
        Ok(Viewer { caller: caller.object_id, directory_reader: decision.allowed })
    }

    fn sees(&self, app: &Application) -> bool {
        self.directory_reader || app.owner == Some(self.caller)
    }
}

fn context(state: &AppState, what: &str) -> String {
    format!("{}/v1.0/$metadata#{what}", super::cloud::graph_resource(&state.public_url).trim_end_matches('/'))
}

fn list_answer(state: &AppState, what: &str, value: Vec<Value>) -> Json<Value> {
    Json(json!({"@odata.context": context(state, what), "value": value}))
}

fn password_json(c: &PasswordCredential) -> Value {
    json!({"customKeyIdentifier": null, "displayName": c.display_name, "endDateTime": rfc3339(&c.end_date_time), "hint": c.hint,
           "keyId": c.key_id, "secretText": null, "startDateTime": rfc3339(&c.start_date_time)})
}

fn key_json(c: &CertificateCredential) -> Value {
    json!({"customKeyIdentifier": c.thumbprint, "displayName": c.display_name, "endDateTime": rfc3339(&c.end_date_time), "key": null,
           "keyId": c.key_id, "startDateTime": rfc3339(&c.start_date_time), "type": "AsymmetricX509Cert", "usage": "Verify"})
}

fn credentials(app: Option<&Application>, viewer: &Viewer) -> (Vec<Value>, Vec<Value>) {
    match app.filter(|a| viewer.sees(a)) {
        Some(a) => (a.password_credentials.iter().map(password_json).collect(), a.key_credentials.iter().map(key_json).collect()),
        None => (Vec::new(), Vec::new()),
    }
}

fn application_json(app: &Application, viewer: &Viewer) -> Value {
    let (passwords, keys) = credentials(Some(app), viewer);
    json!({"@odata.type": "#microsoft.graph.application", "id": app.app_id, "appId": app.app_id, "displayName": app.display_name,
           "createdDateTime": rfc3339(&app.created_date_time), "signInAudience": "AzureADMyOrg", "identifierUris": [],
           "publisherDomain": null, "passwordCredentials": passwords, "keyCredentials": keys})
}

/// A directory entry: the principal, with its app when it is one (managed identities have none).
struct Entry {
    principal: Principal,
    app: Option<Application>,
}

impl Entry {
    /// Entra's: the appId, and for a managed identity its resource ID; kite adds the display name
    /// when no other principal bears it, so `--assignee <name>` resolves as kite's own CLI does.
    fn service_principal_names(&self, unique_name: bool) -> Vec<String> {
        let mut names = vec![self.principal.app_id.to_string()];
        if self.principal.service_principal_type == PrincipalKind::ManagedIdentity {
            names.extend(self.principal.alternative_names.iter().filter(|n| n.starts_with('/')).cloned());
        }
        if unique_name {
            names.push(self.principal.display_name.clone());
        }
        names
    }

    fn json(&self, unique_name: bool, viewer: &Viewer) -> Value {
        let p = &self.principal;
        let (passwords, keys) = credentials(self.app.as_ref(), viewer);
        json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": p.object_id, "appId": p.app_id, "displayName": p.display_name,
               "appDisplayName": p.display_name, "servicePrincipalType": p.service_principal_type, "appOwnerOrganizationId": p.tenant_id,
               "alternativeNames": p.alternative_names, "servicePrincipalNames": self.service_principal_names(unique_name),
               "accountEnabled": true, "passwordCredentials": passwords, "keyCredentials": keys})
    }
}

/// Every principal of the directory: apps' and managed identities' in every subscription.
async fn directory(state: &AppState) -> GraphResult<Vec<Entry>> {
    let mut all: Vec<Entry> = state.store.list_applications().await?.into_iter().map(|a| Entry { principal: a.principal(), app: Some(a) }).collect();
    for sub in &state.subscriptions {
        let identities = state.store.list_identities(&sub.subscription_id, None).await?;
        all.extend(identities.into_iter().map(|m| Entry { principal: m.principal(), app: None }));
    }
    Ok(all)
}

fn name_is_unique(all: &[Entry], name: &str) -> bool {
    all.iter().filter(|e| e.principal.display_name.eq_ignore_ascii_case(name)).count() == 1
}

/// One clause of a Graph `$filter` on objects with these properties.
struct Props<'a> {
    id: Uuid,
    app_id: Uuid,
    display_name: &'a str,
    names: Vec<String>,
}

fn unsupported(clause: &Clause) -> GraphError {
    graph_error(
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        format!(
            "Unsupported query filter clause '{}'. Supported: appId eq, id eq, id in (…), displayName eq, startswith(displayName,'…'), \
             servicePrincipalNames/any(c:c eq '…') (service principals), identifierUris/any(s:s eq '…') (applications)",
            clause.describe()
        ),
    )
}

fn holds(clause: &Clause, p: &Props, collection: &str) -> GraphResult<bool> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    Ok(match clause {
        Clause::Eq(prop, v) if same(prop, "appId") => same(&p.app_id.to_string(), v),
        Clause::Eq(prop, v) if same(prop, "id") => same(&p.id.to_string(), v),
        Clause::Eq(prop, v) if same(prop, "displayName") => same(p.display_name, v),
        Clause::In(prop, vs) if same(prop, "id") => vs.iter().any(|v| same(&p.id.to_string(), v)),
        Clause::In(prop, vs) if same(prop, "appId") => vs.iter().any(|v| same(&p.app_id.to_string(), v)),
        Clause::Call(f, args) if same(f, "startswith") => match args.as_slice() {
            [Term::Property(prop), Term::Literal(v)] if same(prop, "displayName") => p.display_name.to_lowercase().starts_with(&v.to_lowercase()),
            _ => return Err(unsupported(clause)),
        },
        Clause::AnyEq(c, v) if same(c, collection) => p.names.iter().any(|n| same(n, v)),
        _ => return Err(unsupported(clause)),
    })
}

fn parse_filter(filter: Option<&String>) -> GraphResult<Vec<Clause>> {
    match filter {
        Some(f) => odata::parse(f).map_err(|e| graph_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())),
        None => Ok(Vec::new()),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "$filter")]
    filter: Option<String>,
}

async fn list_service_principals(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Query(q): Query<ListQuery>) -> GraphResult<Json<Value>> {
    let clauses = parse_filter(q.filter.as_ref())?;
    let all = directory(&state).await?;
    let viewer = Viewer::load(&state, &caller).await?;
    let mut value = Vec::new();
    for e in &all {
        let unique = name_is_unique(&all, &e.principal.display_name);
        let p = &e.principal;
        let props = Props { id: p.object_id, app_id: p.app_id, display_name: &p.display_name, names: e.service_principal_names(unique) };
        let mut keep = true;
        for c in &clauses {
            keep &= holds(c, &props, "servicePrincipalNames")?;
        }
        if keep {
            value.push(e.json(unique, &viewer));
        }
    }
    Ok(list_answer(&state, "servicePrincipals", value))
}

async fn list_applications(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Query(q): Query<ListQuery>) -> GraphResult<Json<Value>> {
    let clauses = parse_filter(q.filter.as_ref())?;
    let viewer = Viewer::load(&state, &caller).await?;
    let mut value = Vec::new();
    for app in state.store.list_applications().await? {
        // kite's apps have no identifier URIs: such a filter is understood and matches none.
        let props = Props { id: app.app_id, app_id: app.app_id, display_name: &app.display_name, names: Vec::new() };
        let mut keep = true;
        for c in &clauses {
            keep &= holds(c, &props, "identifierUris")?;
        }
        if keep {
            value.push(application_json(&app, &viewer));
        }
    }
    Ok(list_answer(&state, "applications", value))
}

async fn get_application(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>) -> GraphResult<Json<Value>> {
    let app = find_app(&state, &id).await?;
    let mut body = application_json(&app, &Viewer::load(&state, &caller).await?);
    body["@odata.context"] = json!(context(&state, "applications/$entity"));
    Ok(Json(body))
}

async fn get_service_principal(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>) -> GraphResult<Json<Value>> {
    let all = directory(&state).await?;
    let found = all.iter().find(|e| e.principal.object_id.to_string().eq_ignore_ascii_case(&id) || e.principal.app_id.to_string().eq_ignore_ascii_case(&id));
    let Some(entry) = found else {
        return Err(graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        ));
    };
    let mut body = entry.json(name_is_unique(&all, &entry.principal.display_name), &Viewer::load(&state, &caller).await?);
    body["@odata.context"] = json!(context(&state, "servicePrincipals/$entity"));
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApplication {
    display_name: String,
    #[serde(default)]
    key_credentials: Vec<NewKey>,
}

#[derive(Deserialize)]
pub struct NewKey {
    /// The certificate, base64 DER, as Graph takes it.
    key: String,
}

/// A certificate given as base64 DER, checked as kite checks any certificate credential.
fn certificate(key: &str, now: OffsetDateTime) -> GraphResult<CertificateCredential> {
    let body: String = key.chars().filter(|c| !c.is_whitespace()).collect();
    let lines: Vec<String> = body.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"));
    Ok(CertificateCredential::from_pem(&pem, now)?)
}

async fn create_application(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Body(req): Body<NewApplication>) -> GraphResult<Response> {
    let mut app = Application::new(&req.display_name, state.tenant.tenant_id, Some(caller.object_id), caller.now)?;
    check_key_count(req.key_credentials.len())?;
    for k in &req.key_credentials {
        app.key_credentials.push(certificate(&k.key, caller.now)?);
    }
    state.store.create_application(&app, &[]).await?;
    tracing::info!(app = %app.app_id, by = %caller.object_id, "application registered");
    let viewer = Viewer { caller: caller.object_id, directory_reader: false };
    Ok((StatusCode::CREATED, Json(application_json(&app, &viewer))).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewServicePrincipal {
    app_id: String,
}

/// The app's principal exists from its registration; this answers it, as a create would.
async fn create_service_principal(
    State(state): State<AppState>,
    GraphCaller(caller): GraphCaller,
    Body(req): Body<NewServicePrincipal>,
) -> GraphResult<Response> {
    let missing = || {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            format!("No application has the appId '{}'; register it first (az ad app create)", req.app_id),
        )
    };
    let app_id = Uuid::parse_str(&req.app_id).map_err(|_| missing())?;
    let app = state.store.get_application(&app_id).await.map_err(|_| missing())?;
    let entry = Entry { principal: app.principal(), app: Some(app) };
    let unique = name_is_unique(&directory(&state).await?, &entry.principal.display_name);
    Ok((StatusCode::CREATED, Json(entry.json(unique, &Viewer::load(&state, &caller).await?))).into_response())
}

/// Why a managed identity's principal is not deleted here, when `id` names one.
async fn managed_identity_named(state: &AppState, id: &str) -> Option<GraphError> {
    let p = state.store.get_principal(&Uuid::parse_str(id).ok()?).await.ok()?;
    Some(graph_error(
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        format!("'{}' ({id}) is a managed identity: delete it with 'az identity delete'", p.display_name),
    ))
}

async fn delete_object(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>) -> GraphResult<StatusCode> {
    let app = match find_app(&state, &id).await {
        Ok(app) => app,
        Err(e) => return Err(managed_identity_named(&state, &id).await.unwrap_or(e.into())),
    };
    if app.principal_id == caller.object_id {
        return Err(graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "a service principal cannot delete itself; sign in as another principal"));
    }
    may_change(&state, &caller, &app, APPLICATIONS_DELETE).await?;
    state.store.delete_application(&app.app_id).await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, "application deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    /// Only the app's own name: kite does not rename apps.
    display_name: Option<String>,
    key_credentials: Option<Vec<PatchKey>>,
}

/// A key credential in a PATCH: a new certificate (`key`, base64 DER), or one the app has (`keyId`, key null).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchKey {
    key: Option<String>,
    key_id: Option<Uuid>,
}

/// `PATCH` of an app or its principal: the key credentials as a whole set
/// (as `az ad sp credential reset --cert` sends them: those kept by keyId, new ones by key).
async fn patch_object(
    State(state): State<AppState>,
    GraphCaller(caller): GraphCaller,
    Path(id): Path<String>,
    Body(req): Body<Patch>,
) -> GraphResult<StatusCode> {
    let app = find_app(&state, &id).await?;
    may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    // The name is how kite's own CLI and `--assignee` find the app: kept, as az's re-run of create-for-rbac sends it.
    if let Some(name) = req.display_name.as_ref().filter(|n| **n != app.display_name) {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            format!("kite does not rename apps: '{name}' is not the app's name '{}'; register a new app instead", app.display_name),
        ));
    }
    let keys = req.key_credentials.as_deref().map(|list| key_set(&app, list, caller.now)).transpose()?;
    state
        .store
        .update_application(&app.app_id, &|mut a| {
            if let Some(keys) = &keys {
                a.key_credentials.clone_from(keys);
            }
            Ok(a)
        })
        .await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, keys = keys.as_ref().map(Vec::len), "application updated");
    Ok(StatusCode::NO_CONTENT)
}

/// The key credentials a PATCH asks for: those the app has, kept by keyId, and new certificates.
fn key_set(app: &Application, list: &[PatchKey], now: OffsetDateTime) -> GraphResult<Vec<CertificateCredential>> {
    check_key_count(list.len())?;
    let bad = |message: String| graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message);
    list.iter()
        .map(|k| match (&k.key, k.key_id) {
            (Some(der), _) => certificate(der, now),
            (None, Some(key_id)) => app
                .key_credentials
                .iter()
                .find(|c| c.key_id == key_id)
                .cloned()
                .ok_or_else(|| bad(format!("The app has no key credential {key_id} to keep; give a new one's key"))),
            (None, None) => Err(bad("a key credential needs its key or the keyId of one the app has".into())),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddPassword {
    #[serde(default)]
    password_credential: PasswordRequest,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRequest {
    display_name: Option<String>,
    end_date_time: Option<String>,
}

async fn add_password(
    State(state): State<AppState>,
    GraphCaller(caller): GraphCaller,
    Path(id): Path<String>,
    Body(req): Body<AddPassword>,
) -> GraphResult<Json<Value>> {
    let app = find_app(&state, &id).await?;
    may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    let end = secret_end_date(caller.now, None, parse_end_date(req.password_credential.end_date_time.as_deref())?)?;
    let secret = PasswordCredential::generate(caller.now, end, req.password_credential.display_name);
    let credential = secret.credential.clone();
    state
        .store
        .update_application(&app.app_id, &|mut a| {
            a.password_credentials.push(credential.clone());
            Ok(a)
        })
        .await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, key = %secret.credential.key_id, "password added");
    let mut body = password_json(&secret.credential);
    body["secretText"] = json!(secret.secret_text);
    body["@odata.context"] = json!(context(&state, "microsoft.graph.passwordCredential"));
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddKey {
    key_credential: NewKey,
    /// A JWT signed with one of the app's current certificates (Graph's proof of possession).
    proof: String,
}

/// The audience Graph's addKey proof carries (the directory's well-known application ID).
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// The longest a proof may be valid for, as Graph allows (`exp` at most 10 minutes after `nbf`).
const PROOF_LIFETIME_SECS: f64 = 600.0;
/// Clock skew tolerated between the prover and kite.
const PROOF_LEEWAY_SECS: i64 = 60;

/// Graph's proof of possession: signed by a current certificate of the app, for the directory,
/// issued by the app, valid now and for at most 10 minutes. Refusals name what the proof carried.
fn check_proof(app: &Application, proof: &str, now: OffsetDateTime) -> GraphResult<()> {
    let bad = |why: String| graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", format!("The proof is invalid: {why}"));
    let claims = kite_token::assertion::peek(proof).map_err(|e| bad(e.to_string()))?;
    let (x5t, x5t256) = (claims.header.x5t.as_deref(), claims.header.x5t_s256.as_deref());
    let cert = app.certificate_by_thumbprint(x5t, x5t256).ok_or_else(|| {
        bad(format!("it is signed with a certificate the app does not hold (x5t '{}'); sign it with a current one", x5t.or(x5t256).unwrap_or("none")))
    })?;
    if now >= cert.end_date_time {
        return Err(bad(format!("its certificate {} expired on {}", cert.thumbprint, rfc3339(&cert.end_date_time))));
    }
    let (n, e) = cert.rsa_public_key()?;
    kite_token::assertion::verify_with_rsa(proof, &n, &e).map_err(|e| bad(e.to_string()))?;
    if claims.audiences() != [PROOF_AUDIENCE] {
        return Err(bad(format!("its audience is {:?}, not '{PROOF_AUDIENCE}'", claims.audiences())));
    }
    if claims.str_claim("iss") != Some(app.app_id.to_string().as_str()) {
        return Err(bad(format!("its issuer is {:?}, not the application's id '{}'", claims.str_claim("iss"), app.app_id)));
    }
    kite_token::assertion::check_time(&claims.claims, now.unix_timestamp(), PROOF_LEEWAY_SECS).map_err(|e| bad(e.to_string()))?;
    let num = |c: &str| claims.claims.get(c).and_then(Value::as_f64);
    match (num("nbf"), num("exp")) {
        (Some(nbf), Some(exp)) if exp - nbf <= PROOF_LIFETIME_SECS => Ok(()),
        (Some(nbf), Some(exp)) => Err(bad(format!("it is valid for {} seconds; at most {PROOF_LIFETIME_SECS} are allowed", exp - nbf))),
        _ => Err(bad("it needs 'nbf' and 'exp' claims".into())),
    }
}

/// `addKey`: a new certificate, proven by one the app holds (the app itself may roll its keys).
async fn add_key(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>, Body(req): Body<AddKey>) -> GraphResult<Json<Value>> {
    let app = find_app(&state, &id).await?;
    if app.principal_id != caller.object_id {
        may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    }
    check_proof(&app, &req.proof, caller.now)?;
    let cert = certificate(&req.key_credential.key, caller.now)?;
    let added = cert.clone();
    state
        .store
        .update_application(&app.app_id, &|mut a| {
            if a.key_credentials.len() >= MAX_KEYS {
                return Err(kite_store::Error::Invalid(format!("the app holds {MAX_KEYS} key credentials, the most allowed; remove one first")));
            }
            a.key_credentials.push(added.clone());
            Ok(a)
        })
        .await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, key = %cert.key_id, "key added");
    let mut body = key_json(&cert);
    body["@odata.context"] = json!(context(&state, "microsoft.graph.keyCredential"));
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovePassword {
    key_id: Uuid,
}

async fn remove_password(
    State(state): State<AppState>,
    GraphCaller(caller): GraphCaller,
    Path(id): Path<String>,
    Body(req): Body<RemovePassword>,
) -> GraphResult<StatusCode> {
    let app = find_app(&state, &id).await?;
    may_change(&state, &caller, &app, CREDENTIALS_UPDATE).await?;
    state
        .store
        .update_application(&app.app_id, &|mut a| {
            let before = a.password_credentials.len();
            a.password_credentials.retain(|c| c.key_id != req.key_id);
            if before == a.password_credentials.len() {
                return Err(kite_store::Error::NotFound(format!("the app has no password with keyId {}", req.key_id)));
            }
            Ok(a)
        })
        .await?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(app = %app.app_id, by = %caller.object_id, key = %req.key_id, "password removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct GetByIds {
    ids: Vec<String>,
}

async fn get_by_ids(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Body(req): Body<GetByIds>) -> GraphResult<Json<Value>> {
    if req.ids.len() > MAX_IDS {
        return Err(graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", format!("{} ids were given; getByIds takes at most {MAX_IDS}", req.ids.len())));
    }
    let all = directory(&state).await?;
    let viewer = Viewer::load(&state, &caller).await?;
    let mut value = Vec::new();
    for id in &req.ids {
        if Uuid::parse_str(id).is_err() {
            let shown: String = id.chars().take(60).collect();
            return Err(graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", format!("Invalid object identifier '{shown}': ids are GUIDs")));
        }
        if let Some(e) = all.iter().find(|e| e.principal.object_id.to_string().eq_ignore_ascii_case(id)) {
            value.push(e.json(name_is_unique(&all, &e.principal.display_name), &viewer));
        }
    }
    Ok(list_answer(&state, "directoryObjects", value))
}

#[derive(Deserialize)]
pub struct AppFic {
    name: String,
    #[serde(flatten)]
    props: FicProps,
}

fn fic_json(state: &AppState, app: &Application, f: &kite_core::federation::FederatedCredential) -> Value {
    json!({"id": f.name, "name": f.name, "issuer": f.issuer, "subject": f.subject, "audiences": f.audiences,
           "description": f.description, "appId": app.app_id, "kiteLastRefusal": state.refusals.last(app.app_id, &f.name)})
}

/// Federated credentials are read by those who may manage the app (they carry its refusals).
async fn fic_app(state: &AppState, caller: &Caller, id: &str, write: bool) -> GraphResult<Application> {
    let app = find_app(state, id).await?;
    if write {
        may_change(state, caller, &app, CREDENTIALS_UPDATE).await?;
    } else {
        super::directory::may_manage(state, caller, &app, APPLICATIONS_READ).await?;
    }
    Ok(app)
}

async fn create_fic(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>, Body(req): Body<AppFic>) -> GraphResult<Response> {
    let app = fic_app(&state, &caller, &id, true).await?;
    let fic = req.props.into_credential(&req.name)?;
    state.store.create_federated_credential(&app.app_id, &fic).await?;
    Ok((StatusCode::CREATED, Json(fic_json(&state, &app, &fic))).into_response())
}

async fn list_fics(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path(id): Path<String>) -> GraphResult<Json<Value>> {
    let app = fic_app(&state, &caller, &id, false).await?;
    let all = state.store.list_federated_credentials(&app.app_id).await?;
    Ok(list_answer(&state, "federatedIdentityCredentials", all.iter().map(|f| fic_json(&state, &app, f)).collect()))
}

async fn get_fic(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path((id, name)): Path<(String, String)>) -> GraphResult<Json<Value>> {
    let app = fic_app(&state, &caller, &id, false).await?;
    let all = state.store.list_federated_credentials(&app.app_id).await?;
    let found = all.iter().find(|f| f.name.eq_ignore_ascii_case(&name));
    let f = found.ok_or_else(|| graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", format!("The app has no federated credential '{name}'")))?;
    Ok(Json(fic_json(&state, &app, f)))
}

async fn delete_fic(State(state): State<AppState>, GraphCaller(caller): GraphCaller, Path((id, name)): Path<(String, String)>) -> GraphResult<StatusCode> {
    let app = fic_app(&state, &caller, &id, true).await?;
    state.store.delete_federated_credential(&app.app_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
