//! Who is calling, and may they. Handlers take a [`Caller`]; nothing else knows about tokens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kite_core::rbac::engine::{evaluate, AccessRequest, Decision, Snapshot};
use kite_core::rbac::ActionKind;
use kite_core::Scope;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::{AppState, MANAGEMENT_AUDIENCES};

#[derive(Clone, Debug)]
pub struct Caller {
    pub object_id: Uuid,
    pub app_id: Uuid,
    /// When the request was judged: the one clock read its handler uses.
    pub now: OffsetDateTime,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Caller::authenticate(parts, state, &[])
    }
}

impl Caller {
    /// The bearer token's principal, if the token is valid for the management API or for one of
    /// `also` (the Graph surface adds its own audience; a Graph token is not a management token).
    pub fn authenticate(parts: &Parts, state: &AppState, also: &[String]) -> Result<Caller, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing: send 'Authorization: Bearer <token>' (get one with 'kite login')",
            ));
        };
        let mut audiences: Vec<String> = MANAGEMENT_AUDIENCES.iter().map(|s| s.to_string()).collect();
        audiences.push(format!("{}/", state.public_url));
        audiences.push(state.public_url.clone());
        audiences.extend(also.iter().cloned());
        let auds: Vec<&str> = audiences.iter().map(String::as_str).collect();
        Caller::from_token(parts, state, token, &auds)
    }

    /// The principal of a kite-issued bearer token valid (signature, issuer, expiry, tenant) for one of `audiences`.
    pub fn from_token(parts: &Parts, state: &AppState, token: &str, audiences: &[&str]) -> Result<Caller, ApiError> {
        let keys = state.keys();
        let now = state.now();
        let (v2, v1) = (state.issuer_v2(), state.issuer_v1());
        let claims = keys.verify(token.trim(), audiences, &[&v2, &v1], now.unix_timestamp()).map_err(|e| match e {
            // ARM's code for it: clients (az, kite's CLI) renew their token and retry.
            kite_token::Error::Expired(_) => {
                ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "ExpiredAuthenticationToken", format!("The access token has expired: {e}"))
            }
            e => ApiError::unauthenticated(format!("The access token is invalid: {e}. Sign in again with 'kite login'")),
        })?;
        if claims.tid != state.tenant.tenant_id.to_string() {
            return Err(ApiError::unauthenticated("The access token is from another tenant"));
        }
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| ApiError::unauthenticated("The access token's oid/appid are not GUIDs"));
        let caller = Caller { object_id: parse(&claims.oid)?, app_id: parse(&claims.appid)?, now };
        crate::audit::layer::CallerSlot::fill(&parts.extensions, caller.app_id.to_string(), "Bearer");
        Ok(caller)
    }
}

/// Runs the RBAC engine for `principal` over what the store holds on the scope's chain.
pub async fn decide(state: &AppState, principal: Uuid, action: &str, kind: ActionKind, scope: &Scope) -> ApiResult<Decision> {
    let assignments = state.store.assignments_on_chain(&principal, scope).await?;
    let custom = state.store.list_role_definitions().await?;
    let snapshot = Snapshot::new(custom, assignments);
    Ok(evaluate(&snapshot, &AccessRequest { principal_id: principal, action, kind, scope }))
}

/// Everything a principal holds, for filtering a listing in memory: one read, however many items.
pub struct CallerAccess {
    principal: Uuid,
    snapshot: Snapshot,
}

impl CallerAccess {
    pub async fn load(state: &AppState, caller: &Caller) -> ApiResult<CallerAccess> {
        let filter = kite_store::AssignmentFilter { principal_id: Some(caller.object_id), all: true, ..Default::default() };
        let assignments = state.store.list_role_assignments(&filter).await?;
        let custom = state.store.list_role_definitions().await?;
        Ok(CallerAccess { principal: caller.object_id, snapshot: Snapshot::new(custom, assignments) })
    }

    pub fn allows(&self, action: &str, scope: &Scope) -> bool {
        evaluate(&self.snapshot, &AccessRequest { principal_id: self.principal, action, kind: ActionKind::Action, scope }).allowed
    }

    /// The items at whose scope the caller may do `action`, for listings that span many scopes.
    pub fn permitted<T>(&self, items: Vec<T>, action: &str, scope: impl Fn(&T) -> ApiResult<Scope>) -> ApiResult<Vec<T>> {
        let mut out = Vec::new();
        for item in items {
            if self.allows(action, &scope(&item)?) {
                out.push(item);
            }
        }
        Ok(out)
    }
}

/// Allows the call or answers 403 `AuthorizationFailed` with the engine's explanation.
pub async fn authorize(state: &AppState, caller: &Caller, action: &str, scope: &Scope) -> ApiResult<()> {
    let decision = decide(state, caller.object_id, action, ActionKind::Action, scope).await?;
    if decision.allowed {
        Ok(())
    } else {
        tracing::info!(caller = %caller.object_id, action, scope = %scope, "denied: {}", decision.reason);
        Err(ApiError::forbidden(decision))
    }
}
