//! Entra-ID-shaped token service endpoints: OIDC discovery, JWKS and `client_credentials` with a
//! client secret. Errors carry Entra's AADSTS codes and shape, so clients and people recognise them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use kite_core::directory::{Application, Principal};
use kite_core::federation::match_assertion;
use kite_token::assertion::{self, AssertionError, Unverified};
use kite_token::AccessClaims;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clients::Client;
use crate::state::AppState;

/// An OAuth2 protocol error with its Entra ID code.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
    /// Seconds for a `Retry-After` header (throttled callers).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        OAuthError { status, error, code, description: description.into(), retry_after: None }
    }

    /// `AADSTS<code>: <description>`, as a relayed error quotes it.
    pub fn summary(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.description)
    }

    pub fn body(&self, now: OffsetDateTime, public_url: &str) -> Value {
        let ts = now.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")).unwrap_or_default();
        let (trace, correlation) = (Uuid::new_v4(), Uuid::new_v4());
        json!({
            "error": self.error,
            "error_description": format!("{}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}", self.summary()),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{public_url}/error?code={}", self.code),
        })
    }
}

#[derive(Deserialize, Debug, Default)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion: Option<String>,
    client_assertion_type: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on assertions' time claims.
const LEEWAY_SECS: i64 = 300;

fn missing(param: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", 900144, format!("The request body must contain the following parameter: '{param}'."))
}

fn invalid_client(code: u32, description: String) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, description)
}

/// Which endpoint was called: v2 takes `scope=<resource>/.default`, v1 takes `resource=`.
#[derive(Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

fn time_error(e: AssertionError) -> OAuthError {
    invalid_client(700024, format!("Client assertion is not within its valid time range: {}.", e.detail()))
}

/// A client secret, checked against the app's stored salted hashes.
fn secret_grant(app: &Application, client_id: &str, secret: &str, now: OffsetDateTime) -> Result<(), OAuthError> {
    match app.password_credentials.iter().find(|c| c.matches(secret)) {
        None => Err(invalid_client(
            7000215,
            format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        )),
        Some(c) if c.is_expired(now) => {
            tracing::warn!(app = %app.app_id, key = %c.key_id, expired = %c.end_date_time, "token refused: client secret expired");
            Err(invalid_client(
                7000222,
                format!("The provided client secret keys for app '{client_id}' are expired. Create new keys for your app with 'kite ad sp credential reset --id {client_id}', or consider using certificate credentials for added security."),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// A client assertion the app signed with the private key of a certificate it uploaded.
fn certificate_grant(state: &AppState, app: &Application, client_id: &str, raw: &str, claims: &Unverified, now: OffsetDateTime) -> Result<(), OAuthError> {
    let (x5t, x5t256) = (claims.header.x5t.clone(), claims.header.x5t_s256.clone());
    let presented = x5t.clone().or(x5t256.clone()).unwrap_or_else(|| "(none: put the certificate's thumbprint in the x5t header)".into());
    let cert = app
        .key_credentials
        .iter()
        .find(|c| {
            let (sha1, sha256) = c.header_thumbprints();
            x5t.as_deref().is_some_and(|t| t.trim_end_matches('=') == sha1) || x5t256.as_deref().is_some_and(|t| t.trim_end_matches('=') == sha256)
        })
        .ok_or_else(|| {
            invalid_client(
                700027,
                format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{presented}'. List the app's certificates with 'kite ad sp credential list --id {client_id} --cert']"),
            )
        })?;
    if now >= cert.end_date_time {
        return Err(invalid_client(
            700027,
            format!("The certificate {} registered on application '{client_id}' expired on {}; upload a current one", cert.thumbprint, cert.end_date_time),
        ));
    }
    if claims.str_claim("sub") != Some(client_id) {
        return Err(invalid_client(700027, format!("Client assertion 'sub' must equal the client id '{client_id}'.")));
    }
    let endpoints = [
        format!("{}/{}/oauth2/v2.0/token", state.public_url, state.tenant.tenant_id),
        format!("{}/{}/oauth2/token", state.public_url, state.tenant.tenant_id),
        state.issuer_v2(),
    ];
    let aud = claims.audiences();
    if !aud.iter().any(|a| endpoints.contains(a)) {
        return Err(invalid_client(700027, format!("Client assertion audience {aud:?} is invalid: it must be the token endpoint '{}'.", endpoints[0])));
    }
    let (n, e) = cert.rsa_public_key().map_err(|e| invalid_client(700027, e.to_string()))?;
    assertion::verify_with_rsa(raw, &n, &e)
        .map_err(|e| invalid_client(700027, format!("Client assertion failed signature validation. [Reason - {e}]", e = e.detail())))?;
    assertion::check_time(&claims.claims, now.unix_timestamp(), LEEWAY_SECS).map_err(time_error)
}

/// A token from an external issuer, trusted through one of the client's federated credentials.
async fn federated_grant(state: &AppState, client_id: &Uuid, raw: &str, claims: &Unverified, now: OffsetDateTime) -> Result<(), OAuthError> {
    let iss = claims.str_claim("iss").ok_or_else(|| invalid_client(50027, "JWT token is invalid or malformed: it has no 'iss' claim.".into()))?;
    let sub = claims.str_claim("sub").unwrap_or_default();
    let fics = state.store.list_federated_credentials(client_id).await.map_err(server_error)?;
    match_assertion(&fics, iss, sub, &claims.audiences()).map_err(|d| {
        tracing::info!(client = %client_id, iss, sub, "federated assertion refused: {}", d.detail);
        state.refusals.record(*client_id, &d, now);
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d.code, d.message)
    })?;
    let verified = if iss == state.issuer_v2() {
        assertion::verify_with_jwks(raw, state.keys().jwks())
    } else {
        let jwks = state
            .issuers
            .jwks(iss, claims.header.kid.as_deref())
            .await
            .map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", 50166, format!("Request to External OIDC endpoint failed: {e}")))?;
        assertion::verify_with_jwks(raw, &jwks)
    };
    verified.map_err(|e| invalid_client(50013, format!("Assertion failed signature validation. [Reason - {e}]")))?;
    assertion::check_time(&claims.claims, now.unix_timestamp(), LEEWAY_SECS).map_err(time_error)
}

fn server_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!("token endpoint: {e}");
    OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", 50000, "There was an error issuing a token.")
}

/// The tenant a request names must be this server's.
pub fn check_tenant(state: &AppState, tenant: &str) -> Result<(), OAuthError> {
    if tenant == state.tenant.tenant_id.to_string() {
        return Ok(());
    }
    Err(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID: this server's tenant is {}.", state.tenant.tenant_id),
    ))
}

/// The client with this client id, refused as Entra refuses an unknown one.
pub async fn lookup_client(state: &AppState, client_id: &str) -> Result<(Uuid, Arc<Client>), OAuthError> {
    let unknown = || {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", state.tenant.tenant_id),
        )
    };
    let app_id = Uuid::parse_str(client_id).map_err(|_| unknown())?;
    let client = state.clients.get(state.store.as_ref(), &app_id).await.map_err(server_error)?.ok_or_else(unknown)?;
    Ok((app_id, client))
}

/// A client secret, checked as `client_credentials` checks it (the node agent's type 1 identities too).
pub fn check_secret(client: &Client, client_id: &str, secret: &str, now: OffsetDateTime) -> Result<(), OAuthError> {
    match &client.app {
        Some(app) => secret_grant(app, client_id, secret, now),
        None => Err(invalid_client(
            7000215,
            format!("'{client_id}' is a managed identity: it has no client secrets. Use a federated credential (client_assertion)."),
        )),
    }
}

/// Owns client authentication for every grant, so none can skip a shared step: the tenant, the
/// grant type, the client, then exactly one credential (secret, certificate assertion or
/// federated assertion).
async fn issue(state: &AppState, tenant: &str, form: TokenForm, version: Version, source: IpAddr) -> Result<Value, OAuthError> {
    check_tenant(state, tenant)?;
    let grant = form.grant_type.as_deref().ok_or_else(|| missing("grant_type"))?;
    if grant != "client_credentials" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let client_id = form.client_id.as_deref().ok_or_else(|| missing("client_id"))?;
    let resource = match version {
        Version::V2 => {
            let scope = form.scope.as_deref().ok_or_else(|| missing("scope"))?;
            scope.strip_suffix("/.default").filter(|r| !r.is_empty()).ok_or_else(|| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1002012,
                    format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                )
            })?
        }
        Version::V1 => form.resource.as_deref().ok_or_else(|| missing("resource"))?,
    };
    let (app_id, client) = lookup_client(state, client_id).await?;
    state.auth_throttle.check(app_id, source).map_err(|wait| throttled(client_id, wait))?;
    match authenticate(state, &form, client_id, app_id, &client).await {
        Ok(()) => state.auth_throttle.succeeded(app_id, source),
        Err(e) => {
            if e.status != StatusCode::INTERNAL_SERVER_ERROR {
                state.auth_throttle.failed(app_id, source);
            }
            return Err(e);
        }
    }
    mint(state, &client.principal, resource, version == Version::V2)
}

/// Entra's lockout answer, with how long to wait.
fn throttled(client_id: &str, wait: std::time::Duration) -> OAuthError {
    let secs = wait.as_secs().max(1);
    let mut e = OAuthError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        50053,
        format!("Too many failed authentications for app '{client_id}' from this address; further attempts are refused for {secs} seconds."),
    );
    e.retry_after = Some(secs);
    e
}

/// Checks the one credential the request carries: a secret, a certificate assertion or a
/// federated assertion.
async fn authenticate(state: &AppState, form: &TokenForm, client_id: &str, app_id: Uuid, client: &Client) -> Result<(), OAuthError> {
    let now = state.now();
    match (form.client_secret.as_deref(), form.client_assertion.as_deref()) {
        (Some(secret), None) => check_secret(client, client_id, secret, now),
        (None, Some(raw)) => {
            if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    format!("The request body must contain the following parameter: 'client_assertion_type' = '{JWT_BEARER}'."),
                ));
            }
            let claims = assertion::peek(raw).map_err(|e| invalid_client(50027, format!("JWT token is invalid or malformed: {e}")))?;
            match (&client.app, claims.str_claim("iss") == Some(client_id)) {
                (Some(app), true) => certificate_grant(state, app, client_id, raw, &claims, now),
                _ => federated_grant(state, &app_id, raw, &claims, now).await,
            }
        }
        (Some(_), Some(_)) => {
            Err(OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", 90023, "Give either client_secret or client_assertion, not both."))
        }
        (None, None) => Err(invalid_client(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into())),
    }
}

/// Signs an access token for `principal` and answers in the token endpoint's shape: v2 with numeric
/// lifetimes, v1 (also what IMDS returns) with string lifetimes, `expires_on`, `not_before`, `resource`.
pub fn mint(state: &AppState, principal: &Principal, resource: &str, v2: bool) -> Result<Value, OAuthError> {
    let iat = state.now().unix_timestamp();
    let lifetime = state.token_lifetime_secs;
    let claims = AccessClaims {
        aud: resource.to_string(),
        iss: if v2 { state.issuer_v2() } else { state.issuer_v1() },
        iat,
        nbf: iat,
        exp: iat + lifetime,
        tid: state.tenant.tenant_id.to_string(),
        oid: principal.object_id.to_string(),
        sub: principal.object_id.to_string(),
        appid: principal.app_id.to_string(),
        azp: principal.app_id.to_string(),
        idtyp: "app".into(),
        ver: if v2 { "2.0".into() } else { "1.0".into() },
    };
    let token = state.keys().sign(&claims).map_err(server_error)?;
    let mut body = json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token});
    if !v2 {
        body["expires_on"] = json!((iat + lifetime).to_string());
        body["not_before"] = json!(iat.to_string());
        body["resource"] = json!(resource);
        body["expires_in"] = json!(lifetime.to_string());
        body["ext_expires_in"] = json!(lifetime.to_string());
    }
    Ok(body)
}

fn answer(state: &AppState, result: Result<Value, OAuthError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, [("cache-control", "no-store")], Json(body)).into_response(),
        Err(e) => {
            let mut response = (e.status, Json(e.body(state.now(), &state.public_url))).into_response();
            if let Some(secs) = e.retry_after {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
            }
            response
        }
    }
}

type FormResult = Result<Form<TokenForm>, axum::extract::rejection::FormRejection>;

/// The caller's address, which failed authentications are counted against; routers driven
/// without a socket (benches) have none and share one count.
type Source = Option<Extension<ConnectInfo<SocketAddr>>>;

async fn endpoint(state: AppState, tenant: String, form: FormResult, version: Version, source: Source) -> Response {
    let source = source.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(addr))| addr.ip());
    let result = match form {
        Ok(Form(form)) => issue(&state, &tenant, form, version, source).await,
        Err(e) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must be application/x-www-form-urlencoded with a 'grant_type' parameter: {}", e.body_text()),
        )),
    };
    answer(&state, result)
}

pub async fn token_v2(State(state): State<AppState>, Path(tenant): Path<String>, source: Source, form: FormResult) -> Response {
    endpoint(state, tenant, form, Version::V2, source).await
}

pub async fn token_v1(State(state): State<AppState>, Path(tenant): Path<String>, source: Source, form: FormResult) -> Response {
    endpoint(state, tenant, form, Version::V1, source).await
}

fn discovery(state: &AppState, v2: bool) -> Value {
    let (base, t) = (&state.public_url, state.tenant.tenant_id);
    let (issuer, prefix) = if v2 { (state.issuer_v2(), format!("{base}/{t}/oauth2/v2.0")) } else { (state.issuer_v1(), format!("{base}/{t}/oauth2")) };
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{prefix}/token"),
        "authorization_endpoint": format!("{prefix}/authorize"),
        "device_authorization_endpoint": format!("{prefix}/devicecode"),
        "end_session_endpoint": format!("{prefix}/logout"),
        "jwks_uri": format!("{base}/{t}/discovery/{}keys", if v2 { "v2.0/" } else { "" }),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp", "ver"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": null,
        "cloud_instance_name": "kite",
    })
}

pub async fn discovery_v2(State(state): State<AppState>) -> Json<Value> {
    Json(discovery(&state, true))
}

pub async fn discovery_v1(State(state): State<AppState>) -> Json<Value> {
    Json(discovery(&state, false))
}

pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.keys().jwks()).unwrap_or_default())
}
