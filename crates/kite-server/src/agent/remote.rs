//! `kite agent`'s side of the agent protocol: it finds the calling pod among its own node's pods
//! (the same decision the embedded agent makes), answers from its token cache when it can, and
//! otherwise asks the kite server (`nodes`), proving itself with its projected service-account
//! token. It holds no database, no signing key and no Secret.
//!
//! Tokens are refreshed five minutes before they expire. While the server cannot be reached, a
//! cached token that is still valid is served rather than failing the pod.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kite_k8s::podidentity::mic::ControllerMode;
use kite_k8s::podidentity::Refusal as PodRefusal;
use kite_k8s::ClusterSource;
use serde_json::{json, Value};

use crate::agent::cache::{CacheKey, TokenCache, TokenJson};
use crate::agent::container_credentials;
use crate::agent::imds::{self, Caller, ImdsQuery, Refused, Unanswered};
use crate::agent::upstream::describe;
use crate::infra::clock::Clock;
use crate::infra::metrics::{ImdsError, Metrics};

/// A token is fetched again this long before it expires.
const REFRESH_AHEAD_SECS: i64 = 300;
/// Served stale while the server is away only when it has at least this long to live.
const STALE_MIN_SECS: i64 = 30;
/// The agent's own token file is small; anything larger is not one.
const MAX_TOKEN_FILE: u64 = 64 << 10;

pub struct Settings {
    /// The kite server's base URL, `https://…`.
    pub server: String,
    /// CA certificate (PEM) the server's certificate chains to; the system roots when absent.
    pub server_ca: Option<PathBuf>,
    /// The agent's projected service-account token (kubelet rotates the file).
    pub token_file: PathBuf,
    pub node: String,
    pub mode: ControllerMode,
    pub cache_size: std::num::NonZeroUsize,
}

pub struct NodeAgent {
    cluster: Arc<dyn ClusterSource>,
    node: String,
    mode: ControllerMode,
    cache: TokenCache,
    http: reqwest::Client,
    server: String,
    token_file: PathBuf,
    clock: Clock,
}

/// How a call to the server went wrong.
enum Failure {
    /// The server decided: the pod is refused, or excepted.
    Answered(Unanswered),
    /// No decision: the server could not be reached or failed; a cached token may stand in.
    Unreachable(String),
}

impl NodeAgent {
    pub fn new(settings: Settings, cluster: Arc<dyn ClusterSource>, clock: Clock) -> anyhow::Result<NodeAgent> {
        let url = url::Url::parse(&settings.server).map_err(|e| anyhow::anyhow!("--server {}: not a URL ({e})", settings.server))?;
        if url.scheme() != "https" || url.host().is_none() {
            anyhow::bail!("--server {}: give the kite server's https:// URL (its tokens must not cross the network in clear)", settings.server);
        }
        let mut http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(10));
        if let Some(ca) = &settings.server_ca {
            let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("--server-ca {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| anyhow::anyhow!("--server-ca {}: not PEM certificates ({e})", ca.display()))?;
            if certs.is_empty() {
                anyhow::bail!("--server-ca {}: holds no PEM certificate", ca.display());
            }
            http = http.tls_certs_only(certs);
        }
        Ok(NodeAgent {
            cluster,
            node: settings.node,
            mode: settings.mode,
            cache: TokenCache::new(settings.cache_size),
            http: http.build()?,
            server: settings.server.trim_end_matches('/').to_string(),
            token_file: settings.token_file,
            clock,
        })
    }

    /// Why the agent cannot answer yet, if it cannot.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.cluster.ready() {
            return Err(format!("the pods of node {} have not been listed yet", self.node));
        }
        match std::fs::metadata(&self.token_file) {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => Err(format!("the agent's token file {} is missing or empty", self.token_file.display())),
        }
    }

    /// The token for the pod at `ip`, from the cache or the server.
    pub async fn token(&self, ip: IpAddr, q: &ImdsQuery, metrics: &Metrics) -> Result<TokenJson, Unanswered> {
        let resource = q.resource()?;
        let cluster = self.cluster.pods();
        // An object ID is resolved by the server's directory; until then the agent cannot tell
        // which of the pod's identities it names, so it leaves the choice, and the caching, to the server.
        let by_object_id = q.object_id.is_some() && q.client_id.is_none();
        let key = match imds::pod_identity(&cluster, self.mode, Caller { ip, node: Some(&self.node) }, &q.selector(None)) {
            Ok((pod, namespace, identity)) => {
                // A type 1 identity's client secret is checked by the server on every call (a reset
                // one is refused at once); its cached token stands in only while the server is away.
                let fresh_from_cache = identity.spec.kind == 0;
                let key: CacheKey = (identity.spec.client_id.to_lowercase(), resource.clone(), None);
                Some((key, format!("{namespace}/{pod}"), fresh_from_cache)).filter(|_| !by_object_id)
            }
            Err(Unanswered::Refused(r)) if by_object_id && matches!(r.kind(), ImdsError::PodRefused(PodRefusal::SeveralIdentities)) => None,
            Err(e) => return Err(e),
        };
        let now = self.clock.now().unix_timestamp();
        if let Some((key, pod, true)) = &key {
            if let Some((_, body, _)) = self.cache.get(key, pod).filter(|(e, _, _)| e - now > REFRESH_AHEAD_SECS) {
                metrics.cache_hit();
                return Ok(body);
            }
        }
        metrics.cache_miss();
        match self.fetch(ip, q).await {
            Ok(answer) => {
                let expires_on = answer["expires_on"].as_str().and_then(|s| s.parse::<i64>().ok());
                let body = TokenJson::new(&answer);
                // Cached only with a sane lifetime: a day at most, and not already over.
                if let (Some((key, pod, _)), Some(expires_on)) = (key, expires_on.filter(|e| *e > now && *e - now <= 86_400)) {
                    let (evicted, entries) = self.cache.insert(key, (expires_on, body.clone()), &pod);
                    metrics.cache_stored(evicted, entries);
                }
                Ok(body)
            }
            Err(Failure::Answered(unanswered)) => Err(unanswered),
            Err(Failure::Unreachable(why)) => {
                let stale = key.and_then(|(key, pod, _)| self.cache.get(&key, &pod)).filter(|(e, _, _)| e - now > STALE_MIN_SECS);
                match stale {
                    Some((_, body, _)) => {
                        tracing::warn!(node = %self.node, "serving a cached token while the kite server is unavailable: {why}");
                        metrics.stale_token_served();
                        Ok(body)
                    }
                    None => Err(Refused::new(ImdsError::ServerUnavailable, StatusCode::SERVICE_UNAVAILABLE, why).into()),
                }
            }
        }
    }

    async fn bearer(&self) -> Result<String, String> {
        let read = async {
            let meta = tokio::fs::metadata(&self.token_file).await?;
            if meta.len() > MAX_TOKEN_FILE {
                return Err(std::io::Error::other(format!("larger than {MAX_TOKEN_FILE} bytes")));
            }
            tokio::fs::read_to_string(&self.token_file).await
        };
        match read.await {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            Ok(_) => Err(format!("kite agent's own token file {} is empty", self.token_file.display())),
            Err(e) => Err(format!("kite agent cannot read its own token file {}: {e}", self.token_file.display())),
        }
    }

    /// The server's answer to the agent's call, or why there is none.
    async fn post(&self, path: &str, body: Value) -> Result<reqwest::Response, String> {
        let bearer = self.bearer().await?;
        let url = format!("{}{path}", self.server);
        self.http
            .post(&url)
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("kite agent could not reach the kite server at {}: {}", self.server, describe(&e)))
    }

    async fn fetch(&self, ip: IpAddr, q: &ImdsQuery) -> Result<Value, Failure> {
        let mut ask = serde_json::to_value(q).unwrap_or_else(|_| json!({}));
        ask["podIP"] = json!(ip.to_string());
        let answer = self.post("/agent/v1/token", ask).await.map_err(Failure::Unreachable)?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let description = body["error_description"].as_str().unwrap_or("the kite server gave no reason").to_string();
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::CONFLICT => Err(Failure::Answered(Unanswered::Excepted)),
            s if s.is_server_error() => Err(Failure::Unreachable(format!("the kite server at {} failed ({s}): {description}", self.server))),
            s => match body["kind"].as_str().and_then(ImdsError::from_label) {
                Some(ImdsError::AgentUnauthorized) | None => {
                    tracing::error!(node = %self.node, "the kite server refused this node agent ({s}): {description}");
                    let message = format!("kite agent on node {} is not accepted by the kite server: {description}", self.node);
                    Err(Failure::Answered(Refused::new(ImdsError::AgentUnauthorized, StatusCode::SERVICE_UNAVAILABLE, message).into()))
                }
                Some(kind) => Err(Failure::Answered(Refused::new(kind, s, description).into())),
            },
        }
    }

    /// EKS Pod Identity: the pod's token goes to the server, whose answer goes back as it came.
    pub async fn credentials(&self, pod_token: &str) -> Response {
        let sent = match self.post("/agent/v1/credentials", json!({"token": pod_token})).await {
            Ok(sent) => sent,
            Err(why) => return container_credentials::Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", why).into_response(),
        };
        let status = sent.status();
        match sent.bytes().await {
            Ok(body) => (status, body).into_response(),
            Err(e) => container_credentials::Refusal::new(
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailableException",
                format!("the kite server broke off its answer: {}", describe(&e)),
            )
            .into_response(),
        }
    }
}
