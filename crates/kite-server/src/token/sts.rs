//! The AWS-STS-shaped endpoint at `/` (what `AWS_ENDPOINT_URL_STS` points boto3 at): the Query
//! API in a form body or query string, XML answers and errors exactly as STS writes them.
//! `AssumeRoleWithWebIdentity` is unsigned (the web identity token is the credential);
//! `GetCallerIdentity` must carry a valid SigV4 signature made with kite-issued credentials.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kite_core::aws::sigv4::SignedRequest;
use kite_core::aws::sts::{ErrorCode, StsError};
use kite_core::aws::xml::{self, CallerIdentity};
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
        let mut headers: Vec<(String, String)> =
            parts.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        // HTTP/2 carries the host as :authority, which clients sign as `host`.
        if let (None, Some(authority)) = (header("host"), parts.uri.authority()) {
            headers.push(("host".into(), authority.to_string()));
        }
        let signed = SignedRequest { method: parts.method.to_string(), path: parts.uri.path().to_string(), query, headers, body: body.to_vec() };
        Ok(StsCall { params, signed, wants_json, request_id })
    }
}

pub async fn endpoint(State(state): State<AppState>, call: StsCall) -> Result<Response, StsFailure> {
    answer(&state, &call, state.now()).await.map_err(|error| StsFailure { error, request_id: call.request_id.clone() })
}

async fn answer(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Response, StsError> {
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

async fn assume_role_with_web_identity(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Response, StsError> {
    let (role_arn, session_name, token) = (call.need("RoleArn")?, call.need("RoleSessionName")?, call.need("WebIdentityToken")?);
    let duration = match call.get("DurationSeconds") {
        Some(d) => Some(d.parse::<u32>().map_err(|_| StsError::new(ErrorCode::ValidationError, format!("DurationSeconds '{d}' is not a number of seconds")))?),
        None => None,
    };
    let (credentials, session) = sessions::assume_role_with_web_identity(state, role_arn, session_name, token, duration, now).await?;
    Ok(ok_xml(xml::assume_role_with_web_identity_response(&credentials, &session, &call.request_id)))
}

async fn get_caller_identity(state: &AppState, call: &StsCall, now: OffsetDateTime) -> Result<Response, StsError> {
    let id = CallerIdentity::of_caller(&authenticate(state, &call.signed, now).await?);
    Ok(if call.wants_json {
        (StatusCode::OK, [("content-type", "application/json")], xml::get_caller_identity_json(&id, &call.request_id)).into_response()
    } else {
        ok_xml(xml::get_caller_identity_response(&id, &call.request_id))
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
}
