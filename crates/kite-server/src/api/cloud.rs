//! `GET /metadata/endpoints`: the cloud document `az cloud register --endpoint-resource-manager`
//! reads (azure-cli's `_arm_to_cli_mapper`), every URL derived from `--public-url`.
//!
//! Public, as Azure's is: it names only URLs any client of this kite already knows, so it takes
//! no token. api-version 2022-09-01 and later answer this cloud as one object; earlier versions
//! (2019-05-01, 2020-06-01, as older clients send) answer the array of clouds, which here holds one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{respond, Query};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

/// The first api-version that answers a single object instead of the list of clouds.
const SINGLE_OBJECT_SINCE: &str = "2022-09-01";

#[derive(Deserialize)]
pub struct MetadataQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

pub async fn endpoints(State(state): State<AppState>, Query(q): Query<MetadataQuery>) -> ApiResult<Response> {
    let Some(version) = q.api_version else {
        return Err(ApiError::bad_request(
            "MissingApiVersionParameter",
            format!("The api-version query parameter (?api-version=) is required for the cloud metadata; use {SINGLE_OBJECT_SINCE}"),
        ));
    };
    let date = version.strip_suffix("-preview").unwrap_or(&version);
    if time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]")).is_err() {
        let shown: String = version.chars().take(40).collect();
        return Err(ApiError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{shown}' is invalid: use a date such as {SINGLE_OBJECT_SINCE} (one object) or 2019-05-01 (the list of clouds)"),
        ));
    }
    let document = cloud_document(&state.public_url)?;
    // Dates in this form order as strings.
    let body = if date >= SINGLE_OBJECT_SINCE { document } else { json!([document]) };
    Ok(respond(StatusCode::OK, body))
}

/// The Graph resource az asks tokens for and calls (`{resource}v1.0/…`): kite's Graph surface
/// under `/graph`, so a Graph token is not a management token.
pub fn graph_resource(public_url: &str) -> String {
    format!("{public_url}/graph/")
}

fn cloud_document(public_url: &str) -> ApiResult<Value> {
    let url = url::Url::parse(public_url).map_err(|e| {
        tracing::error!("the public URL {public_url} does not parse: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "the server's public URL is invalid; see the server log")
    })?;
    let host = url.host_str().unwrap_or("localhost");
    let graph = graph_resource(public_url);
    Ok(json!({
        "name": "kite",
        "resourceManager": format!("{public_url}/"),
        "authentication": {
            "loginEndpoint": public_url,
            "audiences": [format!("{public_url}/")],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "microsoftGraphResourceId": graph,
        "graph": graph,
        "graphAudience": graph,
        "suffixes": {
            "keyVaultDns": format!("vault.{host}"),
        },
    }))
}
