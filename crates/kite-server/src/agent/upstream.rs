//! Forwarding to the node's real IMDS, as NMI does for pods an `AzurePodIdentityException` lets
//! through and for every IMDS path the agent does not answer itself (instance metadata, …).
//! The request goes as it came (method, path, query, headers, body) and the answer comes back as
//! it was; only hop-by-hop headers, which describe one connection, are dropped.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::infra::metrics::ImdsError;
use crate::infra::middleware::SentUri;

/// IMDS's address on Azure VMs.
pub const DEFAULT_IMDS: &str = "http://169.254.169.254";

/// Requests and answers larger than this are refused rather than buffered (IMDS answers are small).
const MAX_BODY: usize = 4 << 20;

const HOP_BY_HOP: [&str; 9] =
    ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"];

/// Set on every forwarded request: one that arrives carrying it has come round from kite itself,
/// because `--upstream-imds` names a kite agent rather than the node's IMDS.
const FORWARDED_BY_KITE: &str = "x-kite-forwarded";

pub struct UpstreamImds {
    base: String,
    client: reqwest::Client,
}

impl UpstreamImds {
    pub fn new(base: &str) -> anyhow::Result<UpstreamImds> {
        let parsed = url::Url::parse(base).map_err(|e| anyhow::anyhow!("--upstream-imds {base}: not a URL ({e}); use e.g. {DEFAULT_IMDS}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || parsed.query().is_some() {
            anyhow::bail!("--upstream-imds {base}: give the IMDS base URL, http://HOST[:PORT], e.g. {DEFAULT_IMDS}");
        }
        let client = reqwest::Client::builder()
            // IMDS is link-local: a proxy configured for the node's outbound traffic must not see it.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(UpstreamImds { base: base.trim_end_matches('/').to_string(), client })
    }

    /// Sends `request` to the upstream IMDS and returns its answer untouched; 502 naming the
    /// upstream when it cannot be reached.
    pub async fn forward(&self, request: Request) -> Result<Response, String> {
        if request.headers().contains_key(FORWARDED_BY_KITE) {
            return Err(format!(
                "--upstream-imds {} leads back to a kite agent, so the request would go round for ever; give the node's IMDS ({DEFAULT_IMDS})",
                self.base
            ));
        }
        // The path as the client sent it, before kite's case-canonicalising rewrite.
        let uri = request.extensions().get::<SentUri>().map(|o| o.0.clone()).unwrap_or_else(|| request.uri().clone());
        let path_and_query = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| format!("the request body could not be read: {e}"))?;
        let sent = self
            .client
            .request(parts.method, format!("{}{path_and_query}", self.base))
            .headers(end_to_end(&parts.headers))
            .header(FORWARDED_BY_KITE, "1")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the node's IMDS at {} (--upstream-imds) did not answer: {}", self.base, describe(&e)))?;
        let status = sent.status();
        let headers = end_to_end(sent.headers());
        let body = sent.bytes().await.map_err(|e| format!("the node's IMDS at {} (--upstream-imds) broke off its answer: {}", self.base, describe(&e)))?;
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out.remove(axum::http::header::CONTENT_LENGTH);
    out
}

/// reqwest's top-level message ("error sending request") hides the cause users need.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

impl UpstreamImds {
    /// Forwards to the node's IMDS; when it cannot be reached, 502 in IMDS's error shape.
    pub async fn relay(&self, request: Request) -> Response {
        match self.forward(request).await {
            Ok(response) => response,
            Err(message) => {
                let mut response = (StatusCode::BAD_GATEWAY, Json(json!({"error": "bad_gateway", "error_description": message}))).into_response();
                response.extensions_mut().insert(ImdsError::UpstreamUnreachable);
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_must_be_an_http_base_url_and_the_error_says_what_to_give() {
        assert_eq!(UpstreamImds::new("http://169.254.169.254/").map(|u| u.base).ok().as_deref(), Some("http://169.254.169.254"));
        for bad in ["169.254.169.254", "ftp://imds", "http://imds/?x=1"] {
            let e = UpstreamImds::new(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("--upstream-imds") && e.contains(DEFAULT_IMDS), "{bad}: {e}");
        }
    }
}
