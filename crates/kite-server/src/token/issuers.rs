//! Signing keys of external token issuers (a cluster's service-account issuer, …), found through
//! their OIDC discovery document and cached. kite's own issuer is answered from its own keys.
//!
//! Anyone who may add a federated credential chooses the URL, and anyone may then make kite fetch
//! it, so fetches go only where [`IssuerAccess`] allows (see `egress`), follow no redirects, are
//! short and small, and a failing issuer is not fetched again until its back-off has passed.
//! Refusals say what failed, never what the other side answered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kite_token::JwkSet;
use parking_lot::Mutex;
use serde_json::Value;

pub use crate::token::egress::IssuerAccess;
use crate::token::egress::{refused_class, refused_message, VettedResolver};

/// Keys are re-read after this long, or sooner when a token names a kid the cache lacks.
const TTL: Duration = Duration::from_secs(300);
/// An unknown kid triggers at most one re-read per issuer in this window (no fetch storms).
const REFRESH_FLOOR: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Discovery documents and key sets are a few KiB; anything past this is not one.
const MAX_BODY: usize = 256 << 10;
/// A failing issuer is left alone for this long, doubling per failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Issuers remembered (keys and failures alike); past it the stalest entry makes room.
const MAX_ISSUERS: usize = 1024;
/// Fetches under way at once, whatever the issuers.
const MAX_FETCHES: usize = 16;

struct Failure {
    until: Instant,
    backoff: Duration,
    reason: String,
}

#[derive(Default)]
struct Caches {
    keys: HashMap<String, (Instant, Arc<JwkSet>)>,
    failures: HashMap<String, Failure>,
}

pub struct IssuerKeys {
    http: reqwest::Client,
    access: IssuerAccess,
    caches: Mutex<Caches>,
    /// Per issuer, the turn to fetch it; entries live only while a fetch or its waiters do.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fetching: tokio::sync::Semaphore,
}

/// Drops the entry whose `age` is oldest when `map` is full, so it never grows past `MAX_ISSUERS`.
fn make_room<V>(map: &mut HashMap<String, V>, age: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ISSUERS {
        return;
    }
    if let Some(oldest) = map.iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| k.clone()) {
        map.remove(&oldest);
    }
}

impl IssuerKeys {
    /// `extra_cas`: PEM files of CAs to trust besides the system's (a private cluster issuer's CA).
    pub fn new(extra_cas: &[PathBuf], access: IssuerAccess) -> Result<IssuerKeys> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on kite's behalf to addresses the resolver never saw.
            .no_proxy()
            .dns_resolver(VettedResolver(access));
        for ca in extra_cas {
            let pem = std::fs::read(ca).with_context(|| format!("reading issuer CA {}", ca.display()))?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).with_context(|| format!("{} is not a PEM certificate", ca.display()))?);
        }
        Ok(IssuerKeys {
            http: builder.build()?,
            access,
            caches: Mutex::default(),
            inflight: Mutex::default(),
            fetching: tokio::sync::Semaphore::new(MAX_FETCHES),
        })
    }

    /// The issuer's JWKS; `kid` names the key the caller needs, so a cache without it is refreshed.
    pub async fn jwks(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<JwkSet>, String> {
        if let Some(answer) = self.cached(issuer, kid) {
            return answer;
        }
        // One fetch per issuer at a time, and whoever waited looks again: the fetch it waited
        // behind has answered for it, so a burst naming one issuer fetches it once.
        let gate = self.inflight.lock().entry(issuer.to_string()).or_default().clone();
        let turn = gate.lock().await;
        let answer = match self.cached(issuer, kid) {
            Some(answer) => answer,
            None => self.fetch_and_remember(issuer).await,
        };
        drop(turn);
        let mut inflight = self.inflight.lock();
        if inflight.get(issuer).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            inflight.remove(issuer);
        }
        answer
    }

    async fn fetch_and_remember(&self, issuer: &str) -> Result<Arc<JwkSet>, String> {
        let _place = self.fetching.acquire().await.map_err(|_| "kite is shutting down".to_string())?;
        match self.fetch(issuer).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                let mut c = self.caches.lock();
                c.failures.remove(issuer);
                make_room(&mut c.keys, |(at, _)| *at);
                c.keys.insert(issuer.to_string(), (Instant::now(), keys.clone()));
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(issuer, "fetching the issuer's keys failed: {reason}");
                let mut c = self.caches.lock();
                let backoff = c.failures.get(issuer).map_or(FIRST_BACKOFF, |f| (f.backoff * 2).min(MAX_BACKOFF));
                make_room(&mut c.failures, |f| f.until);
                c.failures.insert(issuer.to_string(), Failure { until: Instant::now() + backoff, backoff, reason: reason.clone() });
                Err(reason)
            }
        }
    }

    /// The cached keys, or the cached failure while its back-off lasts.
    fn cached(&self, issuer: &str, kid: Option<&str>) -> Option<Result<Arc<JwkSet>, String>> {
        let c = self.caches.lock();
        if let Some((at, keys)) = c.keys.get(issuer) {
            let has_kid = kid.is_none_or(|k| keys.find(k).is_some());
            if at.elapsed() < TTL && (has_kid || at.elapsed() < REFRESH_FLOOR) {
                return Some(Ok(keys.clone()));
            }
        }
        let failure = c.failures.get(issuer).filter(|f| f.until > Instant::now())?;
        let left = failure.until.saturating_duration_since(Instant::now()).as_secs().max(1);
        Some(Err(format!("{} (not retried for another {left}s)", failure.reason)))
    }

    async fn fetch(&self, issuer: &str) -> Result<JwkSet, String> {
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery = self.get("discovery document", &discovery_url).await?;
        if discovery["issuer"].as_str() != Some(issuer) {
            tracing::warn!(issuer, named = %discovery["issuer"], "the discovery document names another issuer");
            return Err("the discovery document names a different issuer".into());
        }
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or_else(|| "the discovery document has no jwks_uri".to_string())?;
        serde_json::from_value(self.get("key set (jwks_uri)", jwks_uri).await?).map_err(|_| "the key set (jwks_uri) is not a JWKS".into())
    }

    /// One GET of a JSON document. Failures name what was fetched and why, never the answer's
    /// body; a refused connection and an answer that is not JSON read alike, so the messages
    /// cannot tell a closed port from an open one.
    async fn get(&self, what: &str, url: &str) -> Result<Value, String> {
        let unavailable = || format!("could not fetch the {what}");
        let parsed = self.access.check_url(url).map_err(|why| format!("refused to fetch the {what}: {why}"))?;
        let mut resp = self.http.get(parsed).send().await.map_err(|e| {
            if let Some(class) = refused_class(&e) {
                format!("refused to fetch the {what}: {}", refused_message(class))
            } else if e.is_timeout() {
                format!("fetching the {what} timed out")
            } else {
                tracing::debug!("GET {url}: {e:?}");
                unavailable()
            }
        })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(format!("the {what} answered a redirect (HTTP {}), which kite does not follow", status.as_u16()));
        }
        if !status.is_success() {
            return Err(format!("the {what} answered HTTP {}", status.as_u16()));
        }
        let too_large = || format!("the {what} is larger than {} KiB", MAX_BODY >> 10);
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > MAX_BODY => return Err(too_large()),
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(format!("fetching the {what} timed out")),
                Err(_) => return Err(unavailable()),
            }
        }
        serde_json::from_slice(&body).map_err(|_| unavailable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_never_grow_past_their_bound() {
        let mut map = HashMap::new();
        let start = Instant::now();
        for i in 0..MAX_ISSUERS + 10 {
            make_room(&mut map, |at: &Instant| *at);
            map.insert(format!("https://issuer-{i}"), start + Duration::from_millis(i as u64));
        }
        assert_eq!(map.len(), MAX_ISSUERS);
        assert!(!map.contains_key("https://issuer-0"), "the oldest entry made room");
        assert!(map.contains_key(&format!("https://issuer-{}", MAX_ISSUERS + 9)));
    }
}
