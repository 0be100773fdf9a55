//! `/metrics` for Prometheus (OpenMetrics text, which Prometheus scrapes natively), on both the
//! HTTPS listener and the node agent's: requests by endpoint and status, latency, the IMDS token
//! cache's hits and misses, and the node agent's errors by kind. Labels are route templates and
//! fixed words, never paths, client IDs or pod names, so the series stay few.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What the node agent's failures are, as the `kind` label of `kite_imds_errors_total`.
#[derive(Clone, Copy, Debug)]
pub enum ImdsError {
    MissingMetadataHeader,
    MissingResource,
    /// The agent's decision refused the pod, labelled with why.
    PodRefused(kite_k8s::podidentity::Refusal),
    UnsupportedIdentityType,
    UnknownIdentity,
    /// A type 1 identity's Secret, or its `clientSecret` key, is missing.
    MissingClientSecret,
    /// The token service refused a type 1 identity's client secret.
    ClientSecretRefused,
    Internal,
    UpstreamUnreachable,
    /// `kite agent`: the kite server could not be reached and no cached token was left to serve.
    ServerUnavailable,
    /// `kite agent`: the kite server refused the agent's own credentials.
    AgentUnauthorized,
}

impl ImdsError {
    pub fn label(self) -> &'static str {
        match self {
            ImdsError::MissingMetadataHeader => "missing_metadata_header",
            ImdsError::MissingResource => "missing_resource",
            ImdsError::PodRefused(why) => why.as_str(),
            ImdsError::UnsupportedIdentityType => "unsupported_identity_type",
            ImdsError::UnknownIdentity => "unknown_identity",
            ImdsError::MissingClientSecret => "missing_client_secret",
            ImdsError::ClientSecretRefused => "client_secret_refused",
            ImdsError::Internal => "internal",
            ImdsError::UpstreamUnreachable => "upstream_unreachable",
            ImdsError::ServerUnavailable => "server_unavailable",
            ImdsError::AgentUnauthorized => "agent_unauthorized",
        }
    }

    /// The kind a label names: how `kite agent` counts the refusals the server sent it.
    pub fn from_label(label: &str) -> Option<ImdsError> {
        use kite_k8s::podidentity::Refusal;
        let plain = [
            ImdsError::MissingMetadataHeader,
            ImdsError::MissingResource,
            ImdsError::UnsupportedIdentityType,
            ImdsError::UnknownIdentity,
            ImdsError::MissingClientSecret,
            ImdsError::ClientSecretRefused,
            ImdsError::Internal,
            ImdsError::UpstreamUnreachable,
            ImdsError::ServerUnavailable,
            ImdsError::AgentUnauthorized,
        ];
        plain.into_iter().chain(Refusal::ALL.map(ImdsError::PodRefused)).find(|k| k.label() == label)
    }
}

/// The fallback serves paths no route names: ARM authorization paths on the HTTPS listener, IMDS
/// paths forwarded to the node on the agent's.
const UNROUTED: &str = "other";

fn latency_histogram() -> Histogram {
    // 50 µs … ~3.3 s: cache hits sit at the bottom, token minting and upstream calls above.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    cache_entries: Gauge,
    imds_errors: Family<KindLabels, Counter>,
    audit_written: Counter,
    audit_dropped: Counter,
    doctor_findings: Family<FindingLabels, Gauge>,
    spoofed_packets: Counter,
    stale_tokens: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kite");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let (cache_hits, cache_misses) = (Counter::default(), Counter::default());
        let (cache_evictions, cache_entries) = (Counter::default(), Gauge::default());
        let imds_errors = Family::<KindLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by endpoint (route template) and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request, by endpoint", latency.clone());
        registry.register("imds_token_cache_hits", "IMDS token requests answered from the token cache", cache_hits.clone());
        registry.register("imds_token_cache_misses", "IMDS token requests that needed a new token", cache_misses.clone());
        registry.register("imds_token_cache_evictions", "Tokens dropped from the full IMDS token cache, least recently used first", cache_evictions.clone());
        registry.register("imds_token_cache_entries", "Tokens the IMDS token cache holds (at most --imds-cache-size)", cache_entries.clone());
        registry.register("imds_errors", "Node-agent requests that failed, by kind", imds_errors.clone());
        let (audit_written, audit_dropped) = (Counter::default(), Counter::default());
        registry.register("audit_events_written", "Audit events written to the store", audit_written.clone());
        registry.register("audit_events_dropped", "Audit events lost: the writer's queue was full, or the store refused the batch", audit_dropped.clone());
        let doctor_findings = Family::<FindingLabels, Gauge>::default();
        registry.register("doctor_findings", "kite doctor's findings at its last run (--doctor-interval), by rule and severity", doctor_findings.clone());
        let (spoofed_packets, stale_tokens) = (Counter::default(), Counter::default());
        registry.register(
            "agent_spoofed_packets",
            "Packets from pod interfaces to IMDS or the agent dropped because their source address does not route back through the interface they came in on (a pod using another pod's IP)",
            spoofed_packets.clone(),
        );
        registry.register(
            "agent_stale_tokens_served",
            "Cached tokens kite agent served because the kite server could not be reached to refresh them",
            stale_tokens.clone(),
        );
        Metrics {
            registry,
            spoofed_packets,
            stale_tokens,
            requests,
            latency,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_entries,
            imds_errors,
            audit_written,
            audit_dropped,
            doctor_findings,
        }
    }
}

impl Metrics {
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    pub fn cache_stored(&self, evicted: bool, entries: usize) {
        if evicted {
            self.cache_evictions.inc();
        }
        self.cache_entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn audit_written(&self, n: usize) {
        self.audit_written.inc_by(n as u64);
    }

    pub fn audit_dropped(&self) {
        self.audit_dropped.inc();
    }

    /// Replaces the findings gauge with this run's counts (rules that found nothing drop out).
    pub fn doctor_findings(&self, findings: &[kite_core::doctor::Finding]) {
        self.doctor_findings.clear();
        for f in findings {
            let severity = match f.severity {
                kite_core::doctor::Severity::Warning => "Warning",
                kite_core::doctor::Severity::Error => "Error",
            };
            self.doctor_findings.get_or_create(&FindingLabels { rule: f.rule, severity }).inc();
        }
    }

    pub fn spoofed_packets(&self, n: u64) {
        self.spoofed_packets.inc_by(n);
    }

    pub fn stale_token_served(&self) {
        self.stale_tokens.inc();
    }

    fn imds_error(&self, kind: ImdsError) {
        self.imds_errors.get_or_create(&KindLabels { kind: kind.label() }).inc();
    }
}

/// Middleware counting and timing every request by its route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| UNROUTED.to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    // The agent's refusals carry their kind; counted here so no handler has to.
    if let Some(kind) = response.extensions().get::<ImdsError>() {
        metrics.imds_error(*kind);
    }
    metrics.latency.get_or_create(&EndpointLabels { endpoint: endpoint.clone() }).observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { endpoint, status: response.status().as_u16() }).inc();
    response
}

pub async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!("metrics could not be encoded: {e}");
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
