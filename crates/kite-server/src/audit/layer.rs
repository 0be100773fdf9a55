//! The one place management writes are recorded: a middleware in front of every route that names
//! the operation from the method and path (`kite_core::audit::operation`), lets the request run,
//! and records who it was (as the caller extractor found them), how it ended and from where.
//! Handlers add nothing unless they know more than the path (`AuditNote`: a created object's ID,
//! CloudTrail's `requestParameters`). Bodies are never read: they carry secrets.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use kite_core::audit::{correlation_id, AuditEvent, Category, NewEvent};

use crate::infra::error::ErrorCode;
use crate::infra::state::AppState;

/// Who made the request, filled in by whichever extractor authenticated it.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<(String, &'static str)>>);

impl CallerSlot {
    /// Records the authenticated caller and how they authenticated, if the request is audited.
    pub fn fill(extensions: &axum::http::Extensions, caller: String, authentication: &'static str) {
        if let Some(slot) = extensions.get::<CallerSlot>() {
            let _ = slot.0.set((caller, authentication));
        }
    }
}

/// What a handler knows beyond the path, put in its response's extensions.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    pub resource_id: Option<String>,
    pub parameters: Vec<(&'static str, String)>,
}

pub const CORRELATION_HEADER: &str = "x-ms-correlation-request-id";

pub async fn management(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let op = match state.audit.enabled() {
        true => kite_core::audit::operation(request.method().as_str(), request.uri().path(), &state.aws_account()),
        false => None,
    };
    let Some(op) = op else {
        return next.run(request).await;
    };
    let correlation = correlation_id(request.headers().get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_string());
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let now = state.now();
    let mut response = next.run(request).await;
    let (caller, authentication) = slot.0.get().cloned().unwrap_or_else(|| (String::new(), "none"));
    let note = response.extensions().get::<AuditNote>().cloned().unwrap_or_default();
    let resource_id = note.resource_id.unwrap_or(op.resource_id);
    let new = NewEvent {
        shape: op.shape,
        category: Category::Administrative,
        caller: &caller,
        authentication,
        operation_name: &op.name,
        resource_id: &resource_id,
        correlation_id: &correlation,
    };
    let mut event = AuditEvent::new(new, now).ended(response.status().as_u16()).from_ip(ip);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        event = event.failed_with(code);
    }
    if let Some(source) = op.event_source {
        event = event.with("eventSource", source);
    }
    for (k, v) in note.parameters {
        event = event.with(k, v);
    }
    state.audit.record(|| event);
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    response
}
