//! API errors in ARM's shape (`{"error": {"code", "message"}}`). Internal details never reach the
//! client: storage failures are logged with a trace id and answered with that id only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::rbac::engine::Decision;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// For `AuthorizationFailed`: the engine's full explanation.
    pub decision: Option<Box<Decision>>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), decision: None, retry_after: None }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
    }
    pub fn forbidden(decision: Decision) -> Self {
        let message = format!(
            "The client '{0}' with object id '{0}' does not have authorization to perform action '{1}' over scope '{2}'. {3}",
            decision.principal_id, decision.action, decision.scope, decision.reason
        );
        ApiError { status: StatusCode::FORBIDDEN, code: "AuthorizationFailed".into(), message, decision: Some(Box::new(decision)), retry_after: None }
    }
}

impl From<kite_store::Error> for ApiError {
    fn from(e: kite_store::Error) -> Self {
        use kite_store::Error::*;
        match e {
            NotFound(m) => ApiError::not_found("NotFound", m),
            Conflict(m) if m.starts_with("RoleAssignmentExists") => ApiError::new(StatusCode::CONFLICT, "RoleAssignmentExists", m),
            Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            Invalid(m) => ApiError::bad_request("InvalidRequestContent", m),
            Backend(m) | Locked(m) => {
                let trace = uuid::Uuid::new_v4();
                tracing::error!(%trace, "storage failure: {m}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("internal error (trace id {trace}); see the server log"))
            }
            Unavailable(m) => {
                let trace = uuid::Uuid::new_v4();
                tracing::error!(%trace, "database unreachable: {m}");
                let message = format!("kite's database cannot be reached right now (trace id {trace}); retry shortly");
                ApiError { retry_after: Some(kite_store::RETRY_AFTER_SECS), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message) }
            }
        }
    }
}

impl From<kite_core::Error> for ApiError {
    fn from(e: kite_core::Error) -> Self {
        match e {
            kite_core::Error::InvalidScope(m) => ApiError::bad_request("InvalidScope", m),
            kite_core::Error::InvalidArgument(m) => ApiError::bad_request("InvalidRequestContent", m),
            kite_core::Error::NotFound(m) => ApiError::not_found("NotFound", m),
            kite_core::Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(d) = self.decision {
            error["additionalInfo"] = json!([{"type": "KiteAccessDecision", "info": d}]);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        // The audit trail records the code (never the message, which may quote what was sent).
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The ARM error code of an answer, for the audit trail.
#[derive(Clone, Debug)]
pub struct ErrorCode(pub String);
