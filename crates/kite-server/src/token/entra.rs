//! Entra-ID-shaped token service endpoints: OIDC discovery, JWKS and `client_credentials` with a
//! client secret. Errors carry Entra's AADSTS codes and shape, so clients and people recognise them.
//! The request is parsed here; authenticating the client and minting are `service`'s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use kite_core::audit::{correlation_id, AuditEvent, Category, NewEvent, Shape};

use crate::infra::state::AppState;
use crate::token::service::{self, OAuthError, Presented};

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

fn missing(param: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", 900144, format!("The request body must contain the following parameter: '{param}'."))
}

/// Which endpoint was called: v2 takes `scope=<resource>/.default`, v1 takes `resource=`.
#[derive(Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// Owns client authentication for every grant, so none can skip a shared step: the tenant, the
/// grant type, the client, then exactly one credential (secret, certificate assertion or
/// federated assertion).
async fn issue(state: &AppState, tenant: &str, form: TokenForm, version: Version, source: IpAddr, now: OffsetDateTime) -> Result<Value, OAuthError> {
    service::check_tenant(state, tenant)?;
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
    let presented =
        Presented { secret: form.client_secret.as_deref(), assertion: form.client_assertion.as_deref(), assertion_type: form.client_assertion_type.as_deref() };
    let client = service::authenticate_client(state, client_id, presented, source, now).await?;
    service::mint(state, &client.principal, resource, version == Version::V2, now)
}

type FormResult = Result<Form<TokenForm>, axum::extract::rejection::FormRejection>;

/// The caller's address, which failed authentications are counted against; routers driven
/// without a socket (benches) have none and share one count.
type Source = Option<Extension<ConnectInfo<SocketAddr>>>;

/// What the trail keeps of a token request: the client, grant, credential kind and resource,
/// never the secret or assertion.
fn token_event(form: Option<&TokenForm>, version: Version, correlation: &str, now: OffsetDateTime) -> AuditEvent {
    let field = |f: fn(&TokenForm) -> &Option<String>| form.and_then(|form| f(form).clone()).unwrap_or_default();
    let credential = match form {
        Some(f) if f.client_assertion.is_some() => "client_assertion",
        Some(f) if f.client_secret.is_some() => "client_secret",
        _ => "none",
    };
    let resource = match version {
        Version::V2 => field(|f| &f.scope),
        Version::V1 => field(|f| &f.resource),
    };
    let client = field(|f| &f.client_id);
    let new = NewEvent {
        shape: Shape::ActivityLog,
        category: Category::Token,
        caller: &client,
        authentication: credential,
        operation_name: TOKEN_OPERATION,
        resource_id: &resource,
        correlation_id: correlation,
    };
    AuditEvent::new(new, now).with("client", &client).with("grant", field(|f| &f.grant_type)).with("resource", &resource)
}

/// The token endpoint's operation in the audit trail.
pub const TOKEN_OPERATION: &str = "Kite.Token/oauth2/token/action";

async fn endpoint(state: AppState, tenant: String, form: FormResult, version: Version, source: Source, headers: HeaderMap) -> Response {
    let source = source.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(addr))| addr.ip());
    let now = state.now();
    // msal and azure-identity send `client-request-id`; the trail and the error body carry it.
    let correlation = correlation_id(headers.get("client-request-id").and_then(|v| v.to_str().ok()));
    // Built only when recorded, so `--no-audit` costs the token path nothing.
    let event = state.audit.enabled().then(|| token_event(form.as_ref().ok().map(|Form(f)| f), version, &correlation, now).from_ip(Some(source.to_string())));
    let result = match form {
        Ok(Form(form)) => issue(&state, &tenant, form, version, source, now).await,
        Err(e) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must be application/x-www-form-urlencoded with a 'grant_type' parameter: {}", e.body_text()),
        )),
    };
    match result {
        Ok(body) => {
            if let Some(event) = event {
                state.audit.record(|| event);
            }
            (StatusCode::OK, [("cache-control", "no-store")], Json(body)).into_response()
        }
        Err(e) => {
            if let Some(event) = event {
                state.audit.record(|| event.ended(e.status.as_u16()).failed_with(format!("AADSTS{}", e.code)));
            }
            e.render_correlated(now, &state.public_url, &correlation)
        }
    }
}

pub async fn token_v2(State(state): State<AppState>, Path(tenant): Path<String>, source: Source, headers: HeaderMap, form: FormResult) -> Response {
    endpoint(state, tenant, form, Version::V2, source, headers).await
}

pub async fn token_v1(State(state): State<AppState>, Path(tenant): Path<String>, source: Source, headers: HeaderMap, form: FormResult) -> Response {
    endpoint(state, tenant, form, Version::V1, source, headers).await
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
