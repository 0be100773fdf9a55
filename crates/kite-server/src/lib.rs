//! kite's HTTP surface: the ARM-shaped management API, the Entra-shaped token endpoints, over TLS
//! with a CA kite generates itself. `app(state)` builds the router without a socket, so tests can
//! drive it directly; `serve` adds the store, the keys, TLS and a listener.
//!
//! One folder per concept, each owning its routes and its protocol's error: `api` (management),
//! `token` (Entra endpoints, STS, and the services every credential check goes through),
//! `agent` (the node agent's endpoints), `webhooks` (what the API server calls), `controller`
//! (MIC). `infra` is what they all stand on. Imports run one way: handlers → services → infra.

// Request paths answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agent;
pub mod api;
pub mod audit;
pub mod controller;
pub mod infra;
pub mod token;
pub mod vault;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{Path, State};
use axum::middleware;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kite_store::{SqlStore, Store};
use kite_token::KeySet;
use parking_lot::RwLock;
use serde_json::{json, Value};
use tower::Layer;

use crate::agent::{cache, container_credentials, upstream};
use crate::api::auth::Caller;
use crate::api::{aks, authorization, aws, aws_users, cloud, directory, doctor, eks, eks_clusters, graph, groups, identities, signing_keys};
use crate::infra::error::ApiResult;
use crate::infra::state::AppState;
use crate::infra::{bootstrap, cluster, conn, metrics, tls};
use crate::token::{entra, issuers, keys, sts};
use crate::webhooks::{admission, policy};

pub struct Config {
    /// `$KITE_HOME`: the SQLite file, the TLS material and the admin credentials live here.
    pub home: PathBuf,
    /// `postgres://…` for scale-out; default is `sqlite://$KITE_HOME/kite.db`.
    pub database_url: Option<String>,
    /// The key-encryption key's source (see `infra::kek`).
    pub kek: infra::kek::KekInput,
    pub listen: SocketAddr,
    /// Plain HTTP, allowed on loopback addresses only.
    pub insecure_http: bool,
    /// How clients reach the server when that is not the listen address (a load balancer, a DNS name).
    pub public_url: Option<String>,
    /// Extra DNS names or IPs for the server certificate.
    pub tls_names: Vec<String>,
    /// The DNS domain vaults live under (`NAME.vault.<domain>`); default: the public URL's host
    /// when it is a DNS name, else `localhost`.
    pub dns_domain: Option<String>,
    pub token_lifetime_secs: i64,
    /// CA certificates to trust when fetching external issuers' keys.
    pub issuer_cas: Vec<PathBuf>,
    /// Non-public networks external issuers may be fetched from (loopback, private).
    pub issuer_access: issuers::IssuerAccess,
    /// Extra time a superseded signing key stays published after its last token expired (clock skew).
    pub key_retire_grace_secs: i64,
    /// RBAC YAML files or directories for the SubjectAccessReview webhook (`POST /authorize`).
    pub k8s_rbac: Vec<PathBuf>,
    /// The EKS-shaped cluster name `aws eks get-token` tokens must name, for `POST /authenticate`.
    pub eks_cluster: Option<String>,
    /// The `aws-auth` ConfigMap (YAML file) that maps IAM identities to Kubernetes users and groups.
    pub aws_auth: Option<PathBuf>,
    /// EKS access entries (JSON file), consulted in the API and API_AND_CONFIG_MAP modes.
    pub access_entries: Option<PathBuf>,
    pub authentication_mode: kite_k8s::awsauth::AuthenticationMode,
    /// The audience kite-issued access tokens must carry to pass `POST /authenticate`.
    pub entra_audience: Option<String>,
    /// Maps those tokens' principals to Kubernetes users and groups (YAML); without it, username = oid.
    pub entra_mapping: Option<PathBuf>,
    /// Kubernetes YAML (Pods with status.podIP, aad-pod-identity objects) for the IMDS endpoint.
    pub pod_identity: Vec<PathBuf>,
    /// A live cluster to read Pods, aad-pod-identity objects, RBAC and aws-auth from instead of files.
    pub kubernetes: Option<kite_kube::Target>,
    /// The cluster's service-account issuer: pods' tokens for `GET /v1/credentials` (with
    /// `--eks-cluster`) and node agents' own tokens are verified with its keys.
    pub cluster_issuer: Option<String>,
    /// The service account `kite agent` runs as; `None`: no node agent is answered.
    pub agent_account: Option<agent::nodes::AgentAccount>,
    /// Managed (the AKS add-on) or standard (the controller assigns identities to nodes).
    pub pod_identity_mode: kite_k8s::podidentity::mic::ControllerMode,
    /// Standard mode: the kubelet identity's client ID, whose role assignments the controller checks.
    pub cluster_identity: Option<String>,
    /// Plain-HTTP listener for the node-agent endpoints only (NMI's port), e.g. `0.0.0.0:2579`.
    pub agent_listen: Option<SocketAddr>,
    /// The node's IMDS, where excepted pods' calls and other IMDS paths are forwarded.
    pub upstream_imds: String,
    /// How many tokens the node agent's cache holds before it evicts the least recently used.
    pub imds_cache_size: std::num::NonZeroUsize,
    /// Connection cap and idle timeout, for each listener.
    pub connections: conn::ConnectionLimits,
    /// The ConfigMap with kite's CA that the workload identity webhook mounts into pods; `None`
    /// when pods trust kite's certificate already.
    pub webhook_ca_config_map: Option<String>,
    /// AWS_REGION for the pods the webhook gives AWS credentials.
    pub webhook_aws_region: String,
    /// A listener of their own for the API server's webhooks, which then leave the main listener;
    /// callers must present a client certificate signed by `webhook_client_ca`.
    pub webhook_listen: Option<SocketAddr>,
    pub webhook_client_ca: Option<PathBuf>,
    /// Whether and how long the audit trail is kept.
    pub audit: audit::AuditSettings,
    /// How often `kite doctor`'s rules run for /metrics (`kite_doctor_findings`); `None`: never.
    pub doctor_interval: Option<std::time::Duration>,
    /// With a live cluster: the Lease the controller runs under, so replicas run one controller.
    pub leader_election: LeaderElection,
    /// A certificate and key (PEM files, e.g. a cert-manager Secret) every replica serves, reloaded
    /// as they change, instead of the certificate kite issues itself.
    pub tls_files: Option<tls::Provided>,
}

pub struct LeaderElection {
    pub namespace: String,
    /// Unique among the replicas: the host (pod) name and a random suffix.
    pub identity: String,
    pub lease_duration: std::time::Duration,
}

impl LeaderElection {
    /// This process's candidacy; the suffix tells apart replicas on one host and a restarted pod.
    pub fn new(namespace: String, lease_duration: std::time::Duration) -> LeaderElection {
        let host = tls::hostname().unwrap_or_else(|| "kite".into());
        LeaderElection { namespace, identity: format!("{host}_{}", uuid::Uuid::new_v4().simple()), lease_duration }
    }
}

async fn subscriptions(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let value: Vec<Value> = state.subscriptions.iter().map(render_subscription).collect();
    Json(json!({ "value": value }))
}

async fn subscription(State(state): State<AppState>, _caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = state.subscription(&id)?;
    let sub = state.subscriptions.iter().find(|s| s.subscription_id == id).map(render_subscription).unwrap_or_default();
    Ok(Json(sub))
}

fn render_subscription(s: &kite_core::directory::Subscription) -> Value {
    json!({"id": format!("/subscriptions/{}", s.subscription_id), "subscriptionId": s.subscription_id,
           "tenantId": s.tenant_id, "displayName": s.display_name, "state": "Enabled"})
}

/// The layers every listener's routes go through: body limit, metrics, access log.
fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(middleware::from_fn(conn::limit_body))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(middleware::from_fn(infra::middleware::access_log))
        .with_state(state)
}

/// The main listener's router. The API server's webhooks are on it unless they have a listener of
/// their own (`--webhook-listen`), where only callers with a client certificate reach them.
pub fn app(state: AppState) -> Router {
    let webhooks = if state.webhooks_on_own_listener { Router::new() } else { webhooks::routes() };
    // The node agent's endpoints are never here (pods reach the agent listener); only the server's
    // side of `kite agent`'s calls is.
    let routes = management().merge(webhooks).merge(agent::nodes::routes()).fallback(authorization::dispatch);
    // Management writes enter the audit trail in one place, whatever their handler.
    let routes = routes.layer(middleware::from_fn_with_state(state.clone(), audit::layer::management));
    // Requests for `NAME.vault.<domain>` go to the Key Vault data plane instead.
    let vault_routes = vault::data::routes().with_state(state.clone());
    let by_host = state.clone();
    let routes = routes.layer(middleware::from_fn(move |req: axum::extract::Request, next: middleware::Next| {
        vault::data::by_host(by_host.clone(), vault_routes.clone(), req, next)
    }));
    layered(routes, state)
}

fn management() -> Router<AppState> {
    const MI: &str = "providers/Microsoft.ManagedIdentity/userAssignedIdentities";
    const AKS: &str = "providers/Microsoft.ContainerService/managedClusters";
    const KV: &str = "providers/Microsoft.KeyVault";
    Router::new()
        .route("/", get(sts::endpoint).post(sts::endpoint))
        .route("/healthz", get(infra::health::healthz))
        .route("/readyz", get(infra::health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(entra::discovery_v2))
        .route("/{tenant}/.well-known/openid-configuration", get(entra::discovery_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(entra::jwks))
        .route("/{tenant}/discovery/keys", get(entra::jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token_v2))
        .route("/{tenant}/oauth2/token", post(entra::token_v1))
        .route("/subscriptions", get(subscriptions))
        .route("/subscriptions/{sub}", get(subscription))
        .route("/subscriptions/{sub}/resourceGroups", get(groups::list))
        .route("/subscriptions/{sub}/resourceGroups/{rg}", get(groups::get).put(groups::put).delete(groups::delete))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{MI}"), get(identities::list_in_group))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{MI}/{{name}}"), get(identities::get).put(identities::put).delete(identities::delete))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{MI}/{{name}}/federatedIdentityCredentials"), get(identities::list_fics))
        .route(
            &format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{MI}/{{name}}/federatedIdentityCredentials/{{fic}}"),
            get(identities::get_fic).put(identities::put_fic).delete(identities::delete_fic),
        )
        .route(&format!("/subscriptions/{{sub}}/{MI}"), get(identities::list_in_subscription))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{AKS}"), get(aks::list_in_group))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{AKS}/{{name}}"), get(aks::get).put(aks::put).delete(aks::delete))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{AKS}/{{name}}/resetServicePrincipalProfile"), post(aks::reset_service_principal_profile))
        .route(&format!("/subscriptions/{{sub}}/{AKS}"), get(aks::list_in_subscription))
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{KV}/vaults"), get(vault::arm::list_in_group))
        .route(
            &format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{KV}/vaults/{{name}}"),
            get(vault::arm::get).put(vault::arm::put).delete(vault::arm::delete),
        )
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{KV}/vaults/{{name}}/accessPolicies/{{kind}}"), put(vault::arm::access_policies))
        .route(&format!("/subscriptions/{{sub}}/{KV}/vaults"), get(vault::arm::list_in_subscription))
        .route("/subscriptions/{sub}/resources", get(api::resources::list))
        // kite keeps no managed HSMs; az lists them beside vaults.
        .route(&format!("/subscriptions/{{sub}}/resourceGroups/{{rg}}/{KV}/managedHSMs"), get(vault::arm::no_managed_hsms))
        .route(&format!("/subscriptions/{{sub}}/{KV}/deletedManagedHSMs"), get(vault::arm::no_managed_hsms))
        .route(&format!("/subscriptions/{{sub}}/{KV}/deletedVaults"), get(vault::arm::list_deleted))
        .route(&format!("/subscriptions/{{sub}}/{KV}/locations/{{location}}/deletedVaults/{{name}}"), get(vault::arm::get_deleted))
        .route(&format!("/subscriptions/{{sub}}/{KV}/locations/{{location}}/deletedVaults/{{name}}/purge"), post(vault::arm::purge))
        .route("/v1.0/servicePrincipals/createForRbac", post(directory::create_for_rbac))
        .route("/v1.0/applications/{id}/resetCredentials", post(directory::reset))
        .route("/v1.0/applications/{id}/credentials", get(directory::list_credentials))
        .route("/v1.0/applications/{id}/credentials/{key_id}", axum::routing::delete(directory::delete_credential))
        .route("/v1.0/principals/resolve", get(directory::resolve))
        .route("/kite/aws/oidcProviders", get(aws::list_providers).post(aws::create_provider).delete(aws::delete_provider))
        .route("/kite/aws/roles", get(aws::list_roles).post(aws::create_role))
        .route("/kite/aws/roles/{name}", get(aws::get_role).delete(aws::delete_role))
        .route("/kite/eks/clusters", get(eks_clusters::list).post(eks_clusters::create))
        .route("/kite/eks/clusters/{cluster}", get(eks_clusters::describe).delete(eks_clusters::delete))
        .route("/kite/eks/clusters/{cluster}/pod-identity-associations", get(eks::list).post(eks::create))
        .route("/kite/eks/clusters/{cluster}/pod-identity-associations/{id}", get(eks::show).delete(eks::delete))
        .route("/kite/aws/users", get(aws_users::list_users).post(aws_users::create_user))
        .route("/kite/aws/users/{name}", get(aws_users::get_user).delete(aws_users::delete_user))
        .route("/kite/aws/users/{name}/accessKeys", get(aws_users::list_keys).post(aws_users::create_key))
        .route("/kite/aws/accessKeys/{key}", axum::routing::patch(aws_users::update_key).delete(aws_users::delete_key))
        .route("/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values", get(audit::api::list))
        .route("/kite/doctor", get(doctor::run))
        .route("/kite/signingKeys", get(signing_keys::list))
        .route("/kite/signingKeys/rotate", post(signing_keys::rotate))
        .merge(graph::routes())
        .nest("/graph", graph::routes())
        .route("/metadata/endpoints", get(cloud::endpoints))
        // az joins `--endpoint-resource-manager https://host/` and `/metadata/…` into `//metadata/…`.
        .route("//metadata/endpoints", get(cloud::endpoints))
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Bootstraps the store if it is new and builds the shared state; also returns where the admin
/// credentials were written when this call created the tenant.
pub async fn prepare(store: Arc<dyn Store>, config: &Config, public_url: &str, ca_file: Option<&std::path::Path>) -> Result<(AppState, Option<PathBuf>)> {
    if let Some(issuer) = &config.cluster_issuer {
        container_credentials::check_issuer(issuer, config.issuer_access)?;
    }
    if config.agent_account.is_some() && config.cluster_issuer.is_none() {
        bail!("--agent-service-account needs --cluster-issuer: node agents' tokens are verified with the cluster's service-account issuer keys");
    }
    let boot = bootstrap::ensure_tenant(store.as_ref(), &config.home, public_url, ca_file).await?;
    bootstrap::ensure_global_administrator(store.as_ref()).await?;
    bootstrap::report_shadowing_roles(store.as_ref()).await?;
    let keys = KeySet::new(&bootstrap::load_keys(store.as_ref()).await?)?;
    let k8s = Arc::new(policy::K8sPolicy::new(policy::Sources {
        rbac: config.k8s_rbac.clone(),
        cluster_id: config.eks_cluster.clone(),
        aws_auth: config.aws_auth.clone(),
        access_entries: config.access_entries.clone(),
        mode: config.authentication_mode,
        entra_audience: config.entra_audience.clone(),
        entra_mapping: config.entra_mapping.clone(),
    })?);
    let pod_files = Arc::new(cluster::PodFiles::load(config.pod_identity.clone())?);
    let workload_identity = Arc::new(admission::settings(&boot.tenant, public_url, config.webhook_ca_config_map.clone(), config.webhook_aws_region.clone()));
    let metrics: Arc<metrics::Metrics> = Arc::default();
    let clock = infra::clock::Clock::system();
    let audit = Arc::new(audit::AuditTrail::start(store.clone(), config.audit, metrics.clone(), clock.clone()));
    let vault = Arc::new(vault::VaultDomain::new(public_url, config.dns_domain.as_deref())?);
    let state = AppState {
        store,
        keys: Arc::new(RwLock::new(Arc::new(keys))),
        tenant: boot.tenant,
        subscriptions: boot.subscriptions,
        public_url: public_url.to_string(),
        token_lifetime_secs: config.token_lifetime_secs,
        issuers: Arc::new(issuers::IssuerKeys::new(&config.issuer_cas, config.issuer_access)?),
        key_retire_grace_secs: config.key_retire_grace_secs,
        clients: Arc::default(),
        cluster: cluster::source(config.kubernetes.as_ref(), &pod_files, &k8s).await?,
        k8s,
        sts_issuer: Arc::default(),
        pod_files,
        imds_cache: Arc::new(cache::TokenCache::new(config.imds_cache_size)),
        pod_identity_mode: config.pod_identity_mode,
        cluster_issuer: config.cluster_issuer.clone(),
        agent_account: config.agent_account.clone(),
        metrics,
        auth_throttle: Arc::default(),
        upstream_imds: Arc::new(upstream::UpstreamImds::new(&config.upstream_imds)?),
        refusals: Arc::default(),
        workload_identity,
        webhooks_on_own_listener: config.webhook_listen.is_some(),
        clock,
        audit,
        vault,
    };
    Ok((state, boot.credentials_file))
}

pub async fn serve(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.home).with_context(|| format!("creating KITE_HOME {}", config.home.display()))?;
    // The database holds signing keys and credential hashes: only the owner may read KITE_HOME.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.home, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", config.home.display()))?;
    }
    if config.webhook_listen.is_some() && (config.insecure_http || config.webhook_client_ca.is_none()) {
        bail!("--webhook-listen serves the API server's webhooks over TLS to callers with a client certificate: give --webhook-client-ca, without --insecure-http");
    }
    if config.tls_files.is_some() && (config.insecure_http || !config.tls_names.is_empty()) {
        bail!("--tls-cert and --tls-key give the certificate to serve: drop --insecure-http and --tls-name (the certificate's own names apply)");
    }
    if config.insecure_http && !is_loopback(&config.listen) {
        bail!("--insecure-http serves plain HTTP and is only allowed on a loopback address (127.0.0.1 or ::1), not {}; drop it to serve HTTPS", config.listen);
    }
    let (database_url, embedded) = infra::kek::database_url(config.database_url.as_deref(), &config.home);
    let (kek, _) = infra::kek::resolve(&config.kek, &config.home, embedded)?;
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&database_url, &kek).await?);
    drop(kek);

    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let scheme = if config.insecure_http { "http" } else { "https" };
    let host = if bound.ip().is_unspecified() { "127.0.0.1".to_string() } else { bound.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("{scheme}://{host}:{}", bound.port())).trim_end_matches('/').to_string();

    let agent = config.agent_listen.map(|a| conn::bind(a, "--agent-listen")).transpose()?;
    let webhook_listener = config.webhook_listen.map(|a| conn::bind(a, "--webhook-listen")).transpose()?;
    // The certificate covers every vault's DNS name (`*.vault.<domain>`), which the SDKs require.
    let vault_names = [vault::VaultDomain::new(&public_url, config.dns_domain.as_deref())?.tls_name()];
    let tls = match (&config.tls_files, config.insecure_http) {
        (_, true) => None,
        (Some(provided), false) => Some(provided.files()),
        (None, false) => Some(tls::ensure(&config.home, &config.tls_names, &vault_names)?),
    };
    // A certificate that does not load stops the start before anything else happens.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let main_tls = tls.as_ref().map(|files| tls::Listener::new(files, None)).transpose()?;
    let (state, credentials_file) = prepare(store, &config, &public_url, tls.as_ref().and_then(|t| t.ca_cert.as_deref())).await?;
    if let Some(path) = &credentials_file {
        println!("kite: created tenant {} with subscription {}", state.tenant.tenant_id, state.default_subscription());
        println!("kite: admin service principal credentials written to {} (readable only by you)", path.display());
        println!("kite: sign in with: kite login --credentials-file {}", path.display());
    }
    keys::spawn_reloader(state.clone());
    keys::spawn_change_listener(state.clone());
    policy::spawn_reloader(state.k8s.clone());
    cluster::spawn_reloader(state.pod_files.clone());
    let resign = controller::spawn(&state, &config).await?;
    if let Some(every) = config.doctor_interval {
        doctor::spawn_watch(state.clone(), every);
    }
    // The outer router only carries the caller's address (the node agent finds pods by it) to the
    // rewritten inner one.
    let service = Router::new().fallback_service(tower::util::MapRequestLayer::new(infra::middleware::rewrite).layer(app(state.clone())));
    let (handle, agent_handle, webhook_handle) = (axum_server::Handle::new(), axum_server::Handle::new(), axum_server::Handle::new());
    if let Some((listener, bound)) = agent {
        agent::spawn(listener, agent::Agent::embedded(&state), agent_handle.clone(), config.connections);
        println!("kite: node agent listening on http://{bound}");
    }
    let mut renewed: Vec<tls::Listener> = main_tls.iter().cloned().collect();
    if let (Some((listener, bound)), Some(files), Some(ca)) = (webhook_listener, &tls, &config.webhook_client_ca) {
        let tls = tls::Listener::new(files, Some(ca))?;
        webhooks::spawn(listener, layered(webhooks::routes(), state.clone()), tls.config.clone(), webhook_handle.clone(), config.connections);
        renewed.push(tls);
        println!("kite: webhooks listening on https://{bound} (client certificates from {})", ca.display());
    }
    println!("kite: listening on {public_url}");
    tracing::info!(%public_url, database = if database_url.starts_with("postgres") { "postgres" } else { "sqlite" }, "kite serving");

    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        // The next replica takes the controller over now, not once the lease has expired.
        if let Some(resign) = resign {
            resign.resign().await;
        }
        for h in [agent_handle, webhook_handle, shutdown] {
            h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        }
    });
    let make = service.into_make_service_with_connect_info::<SocketAddr>();
    let limited = conn::Limited::new(config.connections);
    match (tls, main_tls) {
        (Some(files), Some(main_tls)) => {
            match &config.tls_files {
                Some(provided) => tls::spawn_reload(provided.clone(), renewed),
                None => tls::spawn_renewal(config.home.clone(), files, renewed),
            }
            let mut server = axum_server::from_tcp_rustls(listener, main_tls.config).map(|tls| tls.acceptor(limited)).handle(handle);
            conn::tune(server.http_builder());
            server.serve(make).await?;
        }
        _ => {
            let mut server = axum_server::from_tcp(listener).acceptor(limited).handle(handle);
            conn::tune(server.http_builder());
            server.serve(make).await?;
        }
    }
    // What the last requests queued reaches the store before the process ends.
    state.audit.flush().await;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
