//! What both listeners put in front of their routes: the access log, and the rewrite of ARM's and
//! IMDS's case-insensitive path keywords to the spelling the routers match.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// One line per request: method, path, status, time. Never headers or bodies (they carry secrets).
pub async fn access_log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(%method, path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

/// The URI as the client sent it, kept by kite's path rewrite so forwarding sends it unchanged.
#[derive(Clone)]
pub struct SentUri(pub axum::http::Uri);

/// ARM treats path keywords case-insensitively (`resourcegroups` in identity IDs, `resourceGroups`
/// elsewhere); the router matches one spelling, so keywords are rewritten to it before routing.
fn canonical_path(path: &str) -> String {
    const WORDS: [&str; 9] = [
        "subscriptions",
        "resourceGroups",
        "providers",
        "Microsoft.ManagedIdentity",
        "userAssignedIdentities",
        "federatedIdentityCredentials",
        "Microsoft.ContainerService",
        "managedClusters",
        "Microsoft.KeyVault",
    ];
    path.split('/')
        .enumerate()
        .map(|(i, seg)| match WORDS.iter().find(|w| w.eq_ignore_ascii_case(seg)) {
            Some(w) => *w,
            // NMI matches IMDS's `/metadata/…` case-insensitively; only as the first segment, so a
            // resource named "Metadata" keeps its spelling.
            None if i == 1 && seg.eq_ignore_ascii_case("metadata") => "metadata",
            None => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn rewrite<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let canonical = canonical_path(req.uri().path());
    if canonical != req.uri().path() {
        let sent = SentUri(req.uri().clone());
        req.extensions_mut().insert(sent);
        let pq = match req.uri().query() {
            Some(q) => format!("{canonical}?{q}"),
            None => canonical,
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn arm_keywords_are_matched_in_any_case() {
        assert_eq!(
            canonical_path("/SUBSCRIPTIONS/abc/resourcegroups/MyRG/providers/microsoft.managedidentity/USERASSIGNEDIDENTITIES/Id"),
            "/subscriptions/abc/resourceGroups/MyRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Id"
        );
        assert_eq!(
            canonical_path("/subscriptions/abc/resourcegroups/rg/providers/microsoft.containerservice/MANAGEDCLUSTERS/c"),
            "/subscriptions/abc/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"
        );
        assert_eq!(canonical_path("/Metadata/identity/oauth2/token"), "/metadata/identity/oauth2/token");
        assert_eq!(canonical_path("/subscriptions/a/resourceGroups/Metadata"), "/subscriptions/a/resourceGroups/Metadata");
    }
}
