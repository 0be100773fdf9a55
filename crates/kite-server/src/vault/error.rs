//! The Key Vault protocol's one error type, rendered as Key Vault renders errors:
//! `{"error": {"code", "message", "innererror"?}}`, and on 401 the bearer challenge the Azure SDKs
//! read (`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<vault resource>"`).
//! Messages name the caller, the vault and what was missing; never a secret value.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct KvError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub inner: Option<&'static str>,
    /// Set on 401: the `WWW-Authenticate` value.
    pub challenge: Option<String>,
    /// Set on 503: seconds the client should wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

pub type KvResult<T> = Result<T, KvError>;

impl KvError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> KvError {
        KvError { status, code, message: message.into(), inner: None, challenge: None, retry_after: None }
    }

    pub fn bad_parameter(message: impl Into<String>) -> KvError {
        KvError::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub fn secret_not_found(message: impl Into<String>) -> KvError {
        KvError::new(StatusCode::NOT_FOUND, "SecretNotFound", message)
    }

    /// 401 with the challenge that tells the SDK where to get a token and for which resource.
    pub fn unauthorized(message: impl Into<String>, authority: &str, resource: &str) -> KvError {
        KvError {
            challenge: Some(format!("Bearer authorization=\"{authority}\", resource=\"{resource}\"")),
            ..KvError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
        }
    }

    pub fn forbidden(message: impl Into<String>, inner: &'static str) -> KvError {
        KvError { inner: Some(inner), ..KvError::new(StatusCode::FORBIDDEN, "Forbidden", message) }
    }
}

impl From<kite_store::Error> for KvError {
    fn from(e: kite_store::Error) -> KvError {
        use kite_store::Error::*;
        match e {
            NotFound(m) => KvError::secret_not_found(m.trim_start_matches("SecretNotFound: ").to_string()),
            Conflict(m) => match m.strip_prefix("ObjectIsDeletedButRecoverable: ") {
                Some(rest) => KvError::new(StatusCode::CONFLICT, "Conflict", rest.to_string()),
                None => KvError::new(StatusCode::CONFLICT, "Conflict", m),
            },
            Invalid(m) => KvError::bad_parameter(m),
            Unavailable(m) => {
                let trace = uuid::Uuid::new_v4();
                tracing::error!(%trace, "vault storage unreachable: {m}");
                let message = format!("kite's database cannot be reached right now (trace id {trace}); retry shortly");
                KvError { retry_after: Some(kite_store::RETRY_AFTER_SECS), ..KvError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message) }
            }
            Backend(m) | Locked(m) => {
                let trace = uuid::Uuid::new_v4();
                tracing::error!(%trace, "vault storage failure: {m}");
                KvError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("internal error (trace id {trace}); see the server log"))
            }
        }
    }
}

impl From<kite_core::Error> for KvError {
    fn from(e: kite_core::Error) -> KvError {
        match e {
            kite_core::Error::NotFound(m) => KvError::secret_not_found(m.trim_start_matches("SecretNotFound: ").to_string()),
            kite_core::Error::Conflict(m) => KvError::new(StatusCode::CONFLICT, "Conflict", m),
            kite_core::Error::InvalidArgument(m) | kite_core::Error::InvalidScope(m) => KvError::bad_parameter(m),
        }
    }
}

impl From<crate::infra::error::ApiError> for KvError {
    fn from(e: crate::infra::error::ApiError) -> KvError {
        if e.status == StatusCode::SERVICE_UNAVAILABLE {
            return KvError { retry_after: e.retry_after, ..KvError::new(e.status, "ServiceUnavailable", e.message) };
        }
        if e.status.is_server_error() {
            return KvError::new(e.status, "InternalServerError", e.message);
        }
        KvError::new(e.status, "BadParameter", e.message)
    }
}

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(inner) = self.inner {
            error["innererror"] = json!({"code": inner});
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
