//! ARM list answers as tools page through them: `$top` (at most 1000 a page) and `nextLink` with an
//! opaque `$skiptoken`, followed by the SDKs' pagers and az. A `$filter` the listing does not
//! understand is refused with ARM's `InvalidFilter`, never answered with everything.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

/// ARM's largest page.
pub const MAX_TOP: usize = 1000;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    #[serde(rename = "$top")]
    top: Option<String>,
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
    #[serde(rename = "$filter")]
    pub filter: Option<String>,
}

impl ListQuery {
    /// For listings that take no filter.
    pub fn refuse_filter(&self, what: &str) -> ApiResult<()> {
        match &self.filter {
            Some(f) => Err(invalid_filter(format!("Invalid $filter '{f}': listing {what} takes no $filter"))),
            None => Ok(()),
        }
    }

    /// The page the query asks for, with the `nextLink` to the rest (absolute, at `path` under the
    /// server's public URL).
    pub fn page(&self, state: &AppState, path: &str, items: Vec<Value>) -> ApiResult<Value> {
        let top = match self.top.as_deref() {
            None => MAX_TOP,
            Some(t) => t.parse::<usize>().ok().filter(|n| (1..=MAX_TOP).contains(n)).ok_or_else(|| {
                ApiError::bad_request("InvalidQueryParameterValue", format!("$top '{t}' is not a page size: give a whole number from 1 to {MAX_TOP}"))
            })?,
        };
        let skip = match self.skiptoken.as_deref() {
            None => 0,
            Some(s) => s.parse::<usize>().ok().filter(|n| *n <= items.len()).ok_or_else(|| {
                ApiError::bad_request("InvalidQueryParameterValue", format!("$skiptoken '{s}' is not one this listing gave out; start again without it"))
            })?,
        };
        let rest = items.len() - skip;
        let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
        let mut answer = json!({ "value": value });
        if rest > top {
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            if let Some(v) = &self.api_version {
                next.append_pair("api-version", v);
            }
            if let Some(f) = &self.filter {
                next.append_pair("$filter", f);
            }
            next.append_pair("$top", &top.to_string()).append_pair("$skiptoken", &(skip + top).to_string());
            answer["nextLink"] = json!(format!("{}{path}?{}", state.public_url, next.finish()));
        }
        Ok(answer)
    }
}

pub fn invalid_filter(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("InvalidFilter", message.to_string())
}
