//! The token service without HTTP: client authentication (secret, certificate assertion,
//! federated assertion, with the failed-authentication brake) and `mint`. The Entra-shaped
//! endpoints, the node agent's IMDS handler and the webhooks call it; each renders the
//! `OAuthError` in its own protocol. Security-sensitive: every client credential is checked here.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use kite_core::directory::{Application, Principal};
use kite_core::federation::match_assertion;
use kite_token::assertion::{self, AssertionError, Unverified};
use kite_token::AccessClaims;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::infra::state::AppState;
use crate::token::clients::Client;

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
    pub fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        OAuthError { status, error, code, description: description.into(), retry_after: None }
    }

    /// `AADSTS<code>: <description>`, as a relayed error quotes it.
    pub fn summary(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.description)
    }

    /// The one rendering of Entra's error: status, `Retry-After` when throttled, and the JSON body
    /// (the token endpoint and the node agent both answer with it).
    pub fn render(&self, now: OffsetDateTime, public_url: &str) -> axum::response::Response {
        self.render_correlated(now, public_url, &Uuid::new_v4().to_string())
    }

    /// The error with the request's correlation ID (the one the audit trail records).
    pub fn render_correlated(&self, now: OffsetDateTime, public_url: &str, correlation: &str) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut response = (self.status, axum::Json(self.body(now, public_url, correlation))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }

    fn body(&self, now: OffsetDateTime, public_url: &str, correlation: &str) -> Value {
        let ts = now.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")).unwrap_or_default();
        let trace = Uuid::new_v4();
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

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on assertions' time claims.
const LEEWAY_SECS: i64 = 300;

pub(crate) fn invalid_client(code: u32, description: String) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, description)
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
    let cert = app.certificate_by_thumbprint(x5t.as_deref(), x5t256.as_deref()).ok_or_else(|| {
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
    let fics = state.store.list_federated_credentials(client_id).await.map_err(store_error)?;
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

pub(crate) fn server_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!("token endpoint: {e}");
    OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", 50000, "There was an error issuing a token.")
}

/// A store failure on the token path: 503 with `Retry-After` while the database is unreachable
/// (Entra's AADSTS90033 for a temporarily unavailable service), otherwise a server error.
pub(crate) fn store_error(e: kite_store::Error) -> OAuthError {
    match e {
        kite_store::Error::Unavailable(m) => {
            tracing::error!("token endpoint: database unreachable: {m}");
            let mut e =
                OAuthError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", 90033, "The service is temporarily unavailable; retry shortly.");
            e.retry_after = Some(kite_store::RETRY_AFTER_SECS);
            e
        }
        e => server_error(e),
    }
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
    let client = state.clients.get(state.store.as_ref(), &app_id).await.map_err(store_error)?.ok_or_else(unknown)?;
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

/// The credentials a token request carries, as sent; exactly one of secret and assertion must be there.
pub struct Presented<'a> {
    pub secret: Option<&'a str>,
    pub assertion: Option<&'a str>,
    pub assertion_type: Option<&'a str>,
}

/// Authenticates `client_id` with what it presented, behind the brake on repeated failures from
/// one address; the client it proved to be.
pub async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    presented: Presented<'_>,
    source: IpAddr,
    now: OffsetDateTime,
) -> Result<Arc<Client>, OAuthError> {
    let (app_id, client) = lookup_client(state, client_id).await?;
    state.auth_throttle.check(app_id, source).map_err(|wait| throttled(client_id, wait))?;
    match authenticate(state, &presented, client_id, app_id, &client, now).await {
        Ok(()) => state.auth_throttle.succeeded(app_id, source),
        Err(e) => {
            if e.status != StatusCode::INTERNAL_SERVER_ERROR {
                state.auth_throttle.failed(app_id, source);
            }
            return Err(e);
        }
    }
    Ok(client)
}

/// Checks the one credential the request carries: a secret, a certificate assertion or a
/// federated assertion.
async fn authenticate(
    state: &AppState,
    presented: &Presented<'_>,
    client_id: &str,
    app_id: Uuid,
    client: &Client,
    now: OffsetDateTime,
) -> Result<(), OAuthError> {
    match (presented.secret, presented.assertion) {
        (Some(secret), None) => check_secret(client, client_id, secret, now),
        (None, Some(raw)) => {
            if presented.assertion_type != Some(JWT_BEARER) {
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
pub fn mint(state: &AppState, principal: &Principal, resource: &str, v2: bool, now: OffsetDateTime) -> Result<Value, OAuthError> {
    let iat = now.unix_timestamp();
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
