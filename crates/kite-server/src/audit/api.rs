//! Reading the trail back, as Azure Monitor's Activity Log is read:
//! `GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values?$filter=…`,
//! pages of at most 1000 events with a `nextLink`. Readers need `Microsoft.Insights/eventtypes/values/read`
//! on the subscription (Reader and above hold it through `*/read`).

use axum::extract::State;
use axum::Json;
use kite_core::audit::{parse_filter, parse_skip_token, skip_token, MAX_PAGE};
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::{authorize, Caller};
use crate::api::{Path, Query};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

pub const READ_ACTION: &str = "Microsoft.Insights/eventtypes/values/read";

#[derive(Deserialize)]
pub struct Params {
    #[serde(rename = "$filter")]
    filter: Option<String>,
    #[serde(rename = "$skipToken")]
    skip_token: Option<String>,
    #[serde(rename = "$top")]
    top: Option<u32>,
}

pub async fn list(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>, Query(p): Query<Params>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, READ_ACTION, &Scope::subscription(&sub)).await?;
    let invalid = |e: kite_core::Error| ApiError::bad_request("BadRequest", e.to_string());
    let mut filter = parse_filter(p.filter.as_deref().unwrap_or(""), caller.now, state.audit.retention_days()).map_err(invalid)?;
    filter.after = p.skip_token.as_deref().map(parse_skip_token).transpose().map_err(invalid)?;
    filter.limit = match p.top {
        Some(n @ 1..=MAX_PAGE) => n,
        None => MAX_PAGE,
        Some(n) => return Err(ApiError::bad_request("BadRequest", format!("$top {n} is out of range: 1 to {MAX_PAGE}"))),
    };
    // This replica's queued events are written first, so a caller reads its own writes.
    state.audit.flush().await;
    let events = state.store.list_audit_events(&filter).await?;
    let account = state.aws_account();
    let next = (events.len() == filter.limit as usize).then(|| events.last().map(skip_token)).flatten().map(|token| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("api-version", "2015-04-01");
        if let Some(f) = &p.filter {
            query.append_pair("$filter", f);
        }
        query.append_pair("$top", &filter.limit.to_string());
        query.append_pair("$skipToken", &token);
        format!("{}/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values?{}", state.public_url, query.finish())
    });
    Ok(Json(json!({"value": events.iter().map(|e| e.render(&account)).collect::<Vec<_>>(), "nextLink": next})))
}
