//! Signing keys of external token issuers (a cluster's service-account issuer, …), found through
//! their OIDC discovery document and cached. kite's own issuer is answered from its own keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kite_token::JwkSet;
use serde_json::Value;

/// Keys are re-read after this long, or sooner when a token names a kid the cache lacks.
const TTL: Duration = Duration::from_secs(300);
/// An unknown kid triggers at most one re-read per issuer in this window (no fetch storms).
const REFRESH_FLOOR: Duration = Duration::from_secs(10);

pub struct IssuerKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

/// Plain http is only for issuers on this machine (tests, local clusters); anything else is https.
pub(crate) fn allowed(url: &str) -> bool {
    url.starts_with("https://") || ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p))
}

impl IssuerKeys {
    /// `extra_cas`: PEM files of CAs to trust besides the system's (a private cluster issuer's CA).
    pub fn new(extra_cas: &[PathBuf]) -> Result<IssuerKeys> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5)).redirect(reqwest::redirect::Policy::limited(3));
        for ca in extra_cas {
            let pem = std::fs::read(ca).with_context(|| format!("reading issuer CA {}", ca.display()))?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).with_context(|| format!("{} is not a PEM certificate", ca.display()))?);
        }
        Ok(IssuerKeys { http: builder.build()?, cache: Mutex::new(HashMap::new()) })
    }

    /// The issuer's JWKS; `kid` names the key the caller needs, so a cache without it is refreshed.
    pub async fn jwks(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<JwkSet>, String> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(issuer).cloned());
        if let Some((at, keys)) = &cached {
            let has_kid = kid.is_none_or(|k| keys.find(k).is_some());
            if at.elapsed() < TTL && (has_kid || at.elapsed() < REFRESH_FLOOR) {
                return Ok(keys.clone());
            }
        }
        let keys = Arc::new(self.fetch(issuer).await?);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(issuer.to_string(), (Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    async fn fetch(&self, issuer: &str) -> Result<JwkSet, String> {
        if !allowed(issuer) {
            return Err(format!("issuer '{issuer}' is not an https URL"));
        }
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let get = |url: String| async move {
            let resp = self.http.get(&url).send().await.map_err(|e| {
                // reqwest's top-level message hides the cause (a TLS or DNS failure); show the chain.
                let mut msg = format!("GET {url}: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(&format!(": {s}"));
                    source = s.source();
                }
                msg
            })?;
            if !resp.status().is_success() {
                return Err(format!("GET {url} answered {}", resp.status()));
            }
            resp.json::<Value>().await.map_err(|e| format!("GET {url}: not JSON: {e}"))
        };
        let discovery = get(discovery_url.clone()).await?;
        if discovery["issuer"].as_str() != Some(issuer) {
            return Err(format!("{discovery_url} names issuer {} rather than '{issuer}'", discovery["issuer"]));
        }
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or_else(|| format!("{discovery_url} has no jwks_uri"))?.to_string();
        if !allowed(&jwks_uri) {
            return Err(format!("jwks_uri '{jwks_uri}' is not an https URL"));
        }
        serde_json::from_value(get(jwks_uri.clone()).await?).map_err(|e| format!("{jwks_uri} is not a JWKS: {e}"))
    }
}
