//! The AWS-STS-shaped endpoint at `/` (what `AWS_ENDPOINT_URL_STS` points boto3 at): the Query
//! API in a form body or query string, XML answers and errors exactly as STS writes them.
//! `AssumeRoleWithWebIdentity` is unsigned (the web identity token is the credential);
//! `GetCallerIdentity` must carry a valid SigV4 signature made with kite-issued credentials.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};
use kite_core::aws::sigv4::{self, SignedRequest};
use kite_core::aws::sts::{ErrorCode, StsError};
use kite_core::aws::xml::{self, CallerIdentity};
use kite_token::assertion;
use time::OffsetDateTime;

use crate::infra::state::AppState;
use crate::token::sessions::{self, authenticate};

/// STS's error answer: the XML `ErrorResponse` with the code's status and the call's request id.
pub struct StsFailure {
    error: StsError,
    request_id: String,
}

impl IntoResponse for StsFailure {
    fn into_response(self) -> Response {
        let StsFailure { error, request_id } = self;
        let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        tracing::info!(code = error.code.as_str(), "sts refused: {}", error.message);
        (status, [("content-type", "text/xml")], xml::error_response(error.code, &error.message, &request_id)).into_response()
    }
}

/// One Query API call: its parameters from the query string and a form body, the request as the
/// client signed it, and whether it asked for JSON.
pub struct StsCall {
    params: Vec<(String, String)>,
    signed: SignedRequest,
    wants_json: bool,
    request_id: String,
    /// The caller's address, for the audit trail.
    ip: Option<String>,
}

impl StsCall {
    fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A required parameter, refused in STS's words when absent.
    fn need(&self, name: &str) -> Result<&str, StsError> {
        self.get(name).ok_or_else(|| {
            StsError::new(
                ErrorCode::ValidationError,
                format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(name)),
            )
        })
    }
}

fn decode_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

impl<S: Send + Sync> FromRequest<S> for StsCall {
    type Rejection = StsFailure;

    async fn from_request(request: Request, state: &S) -> Result<Self, StsFailure> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = request.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(|e| StsFailure {
            error: StsError::new(ErrorCode::ValidationError, format!("the request body could not be read: {e}")),
            request_id: request_id.clone(),
        })?;
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let query = decode_pairs(parts.uri.query().unwrap_or("").as_bytes());
        let mut params = query.clone();
        if header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            params.extend(decode_pairs(&body));
        }
        let wants_json = header("accept").is_some_and(|a| a.contains("application/json"));
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_string());
        let mut headers: Vec<(String, String)> =
            parts.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        // HTTP/2 carries the host as :authority, which clients sign as `host`.
        if let (None, Some(authority)) = (header("host"), parts.uri.authority()) {
            headers.push(("host".into(), authority.to_string()));
        }
        let signed = SignedRequest { method: parts.method.to_string(), path: parts.uri.path().to_string(), query, headers, body: body.to_vec() };
        Ok(StsCall { params, signed, wants_json, request_id, ip })
    }
}

pub async fn endpoint(State(state): State<AppState>, call: StsCall) -> Result<Response, StsFailure> {
    let now = state.now();
    match answer(&state, &call, now).await {
        Ok((response, arn)) => {
            state.audit.record(|| {
                let event = sts_event(&call, now);
                if event.authentication == "SigV4" {
                    AuditEvent { caller: arn, ..event }
                } else {
                    event.with("assumedRoleArn", arn)
                }
            });
            Ok(response)
        }
        Err(error) => {
            state.audit.record(|| sts_event(&call, now).ended(error.code.http_status()).failed_with(error.code.as_str()));
            Err(StsFailure { error, request_id: call.request_id.clone() })
        }
    }
}

async fn answer(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Answered, StsError> {
    match call.get("Action") {
        Some("AssumeRoleWithWebIdentity") => assume_role_with_web_identity(state, call, now).await,
        Some("GetCallerIdentity") => get_caller_identity(state, call, now).await,
        Some(other) => Err(StsError::new(
            ErrorCode::ValidationError,
            format!("Action '{other}' is not supported by kite's STS: use AssumeRoleWithWebIdentity or GetCallerIdentity"),
        )),
        None => Err(StsError::new(ErrorCode::ValidationError, "Missing 'Action' parameter (e.g. Action=GetCallerIdentity&Version=2011-06-15)")),
    }
}

fn ok_xml(body: String) -> Response {
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

async fn assume_role_with_web_identity(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Answered, StsError> {
    let (role_arn, session_name, token) = (call.need("RoleArn")?, call.need("RoleSessionName")?, call.need("WebIdentityToken")?);
    let duration = match call.get("DurationSeconds") {
        Some(d) => Some(d.parse::<u32>().map_err(|_| StsError::new(ErrorCode::ValidationError, format!("DurationSeconds '{d}' is not a number of seconds")))?),
        None => None,
    };
    let (credentials, session) = sessions::assume_role_with_web_identity(state, role_arn, session_name, token, duration, now).await?;
    let arn = session.assumed_role_arn.to_string();
    Ok((ok_xml(xml::assume_role_with_web_identity_response(&credentials, &session, &call.request_id)), arn))
}

async fn get_caller_identity(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Answered, StsError> {
    let caller = authenticate(state, &call.signed, now).await?;
    let id = CallerIdentity::of_caller(&caller);
    let response = if call.wants_json {
        (StatusCode::OK, [("content-type", "application/json")], xml::get_caller_identity_json(&id, &call.request_id)).into_response()
    } else {
        ok_xml(xml::get_caller_identity_response(&id, &call.request_id))
    };
    Ok((response, caller.arn().to_string()))
}

/// The answer, and the ARN the trail names: the caller's, or the role session's.
type Answered = (Response, String);

/// What the trail keeps of an STS call: who it claims to be (the web identity's subject and issuer,
/// read unverified, or the signing key ID) and the role asked for, never the token or signature.
fn sts_event(call: &StsCall, now: OffsetDateTime) -> AuditEvent {
    let get = |k: &str| call.get(k).unwrap_or_default();
    let action = call.get("Action").unwrap_or("Unknown");
    let (caller, authentication, identity_provider) = match action {
        "AssumeRoleWithWebIdentity" => match assertion::peek(get("WebIdentityToken")) {
            Ok(claims) => (claims.str_claim("sub").unwrap_or_default().to_string(), "WebIdentity", claims.str_claim("iss").unwrap_or_default().to_string()),
            Err(_) => (String::new(), "WebIdentity", String::new()),
        },
        _ => (sigv4::claimed_access_key_id(&call.signed).unwrap_or_default(), "SigV4", String::new()),
    };
    let role = get("RoleArn");
    let new = NewEvent {
        shape: Shape::CloudTrail,
        category: Category::Token,
        caller: &caller,
        authentication,
        operation_name: action,
        resource_id: role,
        correlation_id: &call.request_id,
    };
    let mut event = AuditEvent::new(new, now).with("eventSource", "sts.amazonaws.com").from_ip(call.ip.clone());
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
