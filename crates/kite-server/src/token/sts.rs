//! The AWS-STS-shaped endpoint at `/` (what `AWS_ENDPOINT_URL_STS` points boto3 at): the Query
//! API in a form body or query string, XML answers and errors exactly as STS writes them.
//! `AssumeRoleWithWebIdentity` is unsigned (the web identity token is the credential);
//! `GetCallerIdentity` must carry a valid SigV4 signature made with kite-issued credentials.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::Extension;
use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};
use kite_core::aws::sigv4::{self, SignedRequest};
use kite_core::aws::sts::{ErrorCode, StsError};
use kite_core::aws::xml::{self, CallerIdentity};
use kite_token::assertion;
use time::OffsetDateTime;

use crate::infra::state::AppState;
use crate::token::sessions::{self, authenticate};

fn error(e: StsError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    tracing::info!(code = e.code.as_str(), "sts refused: {}", e.message);
    (status, [("content-type", "text/xml")], xml::error_response(e.code, &e.message, request_id)).into_response()
}

fn ok_xml(body: String) -> Response {
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect()
}

async fn assume_role_with_web_identity(state: &AppState, params: &[(String, String)], now: OffsetDateTime) -> Result<Answered, StsError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let need = |k: &str| {
        get(k).ok_or_else(|| {
            StsError::new(
                ErrorCode::ValidationError,
                format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(k)),
            )
        })
    };
    let (role_arn, session_name, token) = (need("RoleArn")?, need("RoleSessionName")?, need("WebIdentityToken")?);
    let duration = match get("DurationSeconds") {
        Some(d) => Some(d.parse::<u32>().map_err(|_| StsError::new(ErrorCode::ValidationError, format!("DurationSeconds '{d}' is not a number of seconds")))?),
        None => None,
    };
    let (credentials, session) = sessions::assume_role_with_web_identity(state, role_arn, session_name, token, duration, now).await?;
    let arn = session.assumed_role_arn.to_string();
    Ok((ok_xml(xml::assume_role_with_web_identity_response(&credentials, &session, &uuid::Uuid::new_v4().to_string())), arn))
}

async fn get_caller_identity(state: &AppState, request: &SignedRequest, wants_json: bool, request_id: &str, now: OffsetDateTime) -> Result<Answered, StsError> {
    let caller = authenticate(state, request, now).await?;
    let id = CallerIdentity::of_caller(&caller);
    let response = if wants_json {
        (StatusCode::OK, [("content-type", "application/json")], xml::get_caller_identity_json(&id, request_id)).into_response()
    } else {
        ok_xml(xml::get_caller_identity_response(&id, request_id))
    };
    Ok((response, caller.arn().to_string()))
}

/// The answer, and the ARN the trail names: the caller's, or the role session's.
type Answered = (Response, String);

/// What the trail keeps of an STS call: who it claims to be (the web identity's subject and issuer,
/// read unverified, or the signing key ID) and the role asked for, never the token or signature.
fn sts_event(action: &str, params: &[(String, String)], request: Option<&SignedRequest>, request_id: &str, now: OffsetDateTime) -> AuditEvent {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let (caller, authentication, identity_provider) = match (action, request) {
        ("AssumeRoleWithWebIdentity", _) => match assertion::peek(get("WebIdentityToken")) {
            Ok(claims) => (claims.str_claim("sub").unwrap_or_default().to_string(), "WebIdentity", claims.str_claim("iss").unwrap_or_default().to_string()),
            Err(_) => (String::new(), "WebIdentity", String::new()),
        },
        (_, Some(r)) => (sigv4::claimed_access_key_id(r).unwrap_or_default(), "SigV4", String::new()),
        _ => (String::new(), "none", String::new()),
    };
    let role = get("RoleArn");
    let new = NewEvent {
        shape: Shape::CloudTrail,
        category: Category::Token,
        caller: &caller,
        authentication,
        operation_name: action,
        resource_id: role,
        correlation_id: request_id,
    };
    let mut event = AuditEvent::new(new, now).with("eventSource", "sts.amazonaws.com");
    for (key, value) in [("roleArn", role), ("roleSessionName", get("RoleSessionName")), ("durationSeconds", get("DurationSeconds"))] {
        if !value.is_empty() {
            event = event.with(key, value);
        }
    }
    if !identity_provider.is_empty() {
        event = event.with("identityProvider", identity_provider);
    }
    event
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

pub async fn endpoint(
    State(state): State<AppState>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = source.map(|Extension(c)| c);
    let (request_id, now) = (uuid::Uuid::new_v4().to_string(), state.now());
    let query = decode_pairs(uri.query().unwrap_or(""));
    let is_form = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut params = query.clone();
    if is_form {
        params.extend(decode_pairs(&String::from_utf8_lossy(&body)));
    }
    let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone());
    let mut signed = None;
    let result = match action.as_deref() {
        Some("AssumeRoleWithWebIdentity") => assume_role_with_web_identity(&state, &params, now).await,
        Some("GetCallerIdentity") => {
            let mut request = SignedRequest {
                method: method.to_string(),
                path: uri.path().to_string(),
                query,
                headers: headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
                body: body.to_vec(),
            };
            // HTTP/2 carries the host as :authority, which clients sign as `host`.
            if let (None, Some(authority)) = (request.header("host"), uri.authority()) {
                request.headers.push(("host".into(), authority.to_string()));
            }
            let wants_json = headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
            let answered = get_caller_identity(&state, &request, wants_json, &request_id, now).await;
            signed = Some(request);
            answered
        }
        Some(other) => Err(StsError::new(
            ErrorCode::ValidationError,
            format!("Action '{other}' is not supported by kite's STS: use AssumeRoleWithWebIdentity or GetCallerIdentity"),
        )),
        None => Err(StsError::new(ErrorCode::ValidationError, "Missing 'Action' parameter (e.g. Action=GetCallerIdentity&Version=2011-06-15)")),
    };
    let event =
        sts_event(action.as_deref().unwrap_or("Unknown"), &params, signed.as_ref(), &request_id, now).from_ip(source.map(|ConnectInfo(a)| a.ip().to_string()));
    match result {
        Ok((response, arn)) => {
            let event = if event.authentication == "SigV4" { AuditEvent { caller: arn, ..event } } else { event.with("assumedRoleArn", arn) };
            state.audit.record(event);
            response
        }
        Err(e) => {
            state.audit.record(event.ended(e.code.http_status()).failed_with(e.code.as_str()));
            error(e, &request_id)
        }
    }
}
