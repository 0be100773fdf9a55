//! `kite`: the server (`kite serve`) and an az-like CLI that is a client of its API.

// Request paths answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod agent;
mod args;
mod aws_client;
mod client;
mod commands;
mod files;
mod output;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Parser)]
#[command(name = "kite", version, about = "Kubernetes Identity & Token Exchange")]
pub struct Cli {
    /// Where kite keeps its database, TLS material and CLI profile.
    #[arg(long, global = true, env = "KITE_HOME")]
    home: Option<PathBuf>,
    /// Output format (default json; `k8s auth can-i` answers yes/no like kubectl unless given).
    #[arg(short = 'o', long, global = true, value_enum)]
    output: Option<Format>,
    /// JMESPath query applied to the result, as in az.
    #[arg(long, global = true)]
    query: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the kite server (management API and token service).
    Serve(Box<ServeArgs>),
    /// Run the node agent on a node: IMDS and EKS credentials for its pods, tokens from the kite server.
    Agent(Box<agent::AgentArgs>),
    /// Sign in to a kite server with a service principal.
    Login(commands::account::LoginArgs),
    /// Forget the signed-in profile.
    Logout,
    /// Subscriptions of the signed-in tenant.
    #[command(subcommand)]
    Account(commands::account::AccountCmd),
    /// Resource groups.
    #[command(subcommand)]
    Group(commands::group::GroupCmd),
    /// User-assigned managed identities.
    #[command(subcommand)]
    Identity(commands::identity::IdentityCmd),
    /// Directory objects (service principals).
    #[command(subcommand)]
    Ad(commands::ad::AdCmd),
    /// Role definitions, assignments and access checks.
    #[command(subcommand)]
    Role(commands::role::RoleCmd),
    /// AWS-shaped IAM: OIDC providers and roles that kite's STS endpoint honours.
    #[command(subcommand)]
    Iam(commands::iam::IamCmd),
    /// Kubernetes: RBAC questions answered from RBAC YAML (`kubectl get … -o yaml` dumps).
    #[command(subcommand)]
    K8s(commands::k8s::K8sCmd),
    /// EKS-shaped cluster access: aws-auth identity mappings and access entries (files `kite serve` reads),
    /// and pod identity associations.
    #[command(subcommand)]
    Eks(commands::eks::EksCmd),
    /// AKS-shaped clusters: their identities, node resource group and pod identities.
    #[command(subcommand)]
    Aks(commands::aks::AksCmd),
    /// Key vaults: create, show, list, delete (soft), recover, purge, and access policies.
    #[command(subcommand)]
    Keyvault(commands::keyvault::KeyvaultCmd),
    /// Token-signing keys: list, rotate; and re-wrapping the sealed data keys under a new key-encryption key.
    #[command(subcommand)]
    Keys(commands::keys::KeysCmd),
    /// The audit trail: who did what (management writes, tokens, node-agent and webhook decisions).
    #[command(subcommand)]
    Audit(commands::audit::AuditCmd),
    /// What will break next, each finding with the command that fixes it (exit 0 clean, 1 warnings, 2 errors).
    Doctor(commands::doctor::DoctorArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "KITE_LISTEN")]
    listen: std::net::SocketAddr,
    /// PostgreSQL URL for scale-out (default: SQLite file in KITE_HOME).
    #[arg(long, env = "KITE_DATABASE_URL")]
    database_url: Option<String>,
    /// File holding the key-encryption key (base64 of 32 bytes) that seals signing keys, the STS
    /// master key and vault secrets at rest; or set KITE_KEK. Default: KITE_HOME/kek, generated
    /// (owner-only) on the first start; a PostgreSQL database needs one given.
    #[arg(long)]
    kek_file: Option<PathBuf>,
    /// Serve plain HTTP (loopback addresses only).
    #[arg(long)]
    insecure_http: bool,
    /// The URL clients use to reach this server, when it differs from the listen address.
    #[arg(long, env = "KITE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Extra DNS name or IP for the server certificate (repeatable).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// A PEM certificate (chain) to serve instead of the one kite issues itself, e.g. a cert-manager
    /// Secret mounted as files, so that every replica presents one certificate; re-read when it changes.
    #[arg(long, requires = "tls_key", conflicts_with_all = ["insecure_http", "tls_names"])]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With a live cluster: the namespace of the Lease (kite-controller) through which replicas
    /// agree on the one that runs the pod identity controller.
    #[arg(long, default_value = "kite-system")]
    leader_election_namespace: String,
    /// Seconds a leader's claim on the Lease lasts without renewal (2 to 300): when the leader dies,
    /// another replica takes over within about this long.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    leader_election_lease_duration: u64,
    /// DNS domain vaults are served under (https://NAME.vault.DOMAIN/; the certificate covers
    /// *.vault.DOMAIN). Default: the public URL's host when it is a DNS name, else localhost.
    #[arg(long, env = "KITE_DNS_DOMAIN")]
    dns_domain: Option<String>,
    /// Lifetime of issued access tokens, in seconds: 600 to 86400 (Entra's configurable range).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(600..=86_400))]
    token_lifetime: i64,
    /// CA certificate (PEM) to trust when fetching an external issuer's keys (repeatable).
    #[arg(long = "issuer-ca-file")]
    issuer_cas: Vec<PathBuf>,
    /// Let federated-credential and cluster issuers live on this machine (loopback), over http or
    /// https: for tests and local clusters. Without it, issuers are https on non-loopback addresses.
    #[arg(long)]
    allow_http_issuer: bool,
    /// Let issuers resolve to private networks (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10),
    /// e.g. an on-premises cluster's issuer. Link-local and metadata addresses are never fetched.
    #[arg(long)]
    allow_private_issuer: bool,
    /// Seconds a rotated-out signing key stays published after the last token it signed expired.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i64).range(0..=604_800))]
    key_retire_grace: i64,
    /// Kubernetes RBAC YAML (files or directories) for the SubjectAccessReview webhook, re-read as it changes.
    #[arg(long = "k8s-rbac", conflicts_with = "kubernetes")]
    k8s_rbac: Vec<PathBuf>,
    /// Cluster name that `aws eks get-token` tokens must be made for (TokenReview webhook at /authenticate).
    #[arg(long)]
    eks_cluster: Option<String>,
    /// The aws-auth ConfigMap (YAML) mapping IAM roles/users to Kubernetes users and groups; re-read as it changes.
    #[arg(long, conflicts_with = "kubernetes")]
    aws_auth: Option<PathBuf>,
    /// EKS access entries (JSON, as `kite eks access-entry` writes them); re-read as they change.
    #[arg(long)]
    access_entries: Option<PathBuf>,
    /// CONFIG_MAP, API_AND_CONFIG_MAP or API, as EKS's authentication modes.
    #[arg(long, default_value = "CONFIG_MAP")]
    authentication_mode: kite_k8s::awsauth::AuthenticationMode,
    /// Accept kite-issued access tokens for this audience at /authenticate (e.g. AKS's server app ID
    /// 6dae42f8-4368-4678-94ff-3960e28e3630); the username is the token's oid unless --entra-mapping says otherwise.
    #[arg(long)]
    entra_audience: Option<String>,
    /// YAML mapping principals (objectId or appId) to a Kubernetes username and groups; only listed ones
    /// authenticate. Re-read as it changes.
    #[arg(long, requires = "entra_audience")]
    entra_mapping: Option<PathBuf>,
    /// Kubernetes YAML (Pods with status.podIP, AzureIdentity, AzureIdentityBinding, AzurePodIdentityException)
    /// for the node agent's IMDS endpoint; re-read as it changes.
    #[arg(long = "pod-identity-dir", conflicts_with = "kubernetes")]
    pod_identity: Vec<PathBuf>,
    #[command(flatten)]
    cluster: args::ClusterArgs,
    /// The cluster's service-account issuer URL. With --eks-cluster, GET /v1/credentials accepts pods'
    /// tokens it signed (audience pods.eks.amazonaws.com); with --agent-service-account, node agents' own tokens.
    #[arg(long)]
    cluster_issuer: Option<String>,
    /// NAMESPACE:NAME of the service account kite agent runs as: agents presenting its projected token
    /// (from --cluster-issuer, audience --agent-audience) get tokens for the pods on their own node.
    #[arg(long, requires = "cluster_issuer")]
    agent_service_account: Option<String>,
    /// The audience of node agents' projected service-account tokens.
    #[arg(long, default_value = "kite")]
    agent_audience: String,
    /// managed (the AKS add-on: no node assignment) or standard (the controller assigns identities to
    /// nodes once the cluster identity holds the roles for it, and the agent waits for that).
    #[arg(long, default_value = "managed")]
    pod_identity_mode: kite_k8s::podidentity::mic::ControllerMode,
    /// Standard mode: the client ID of the cluster's kubelet identity, whose role assignments the controller checks.
    #[arg(long)]
    cluster_identity: Option<String>,
    /// Also serve the node-agent endpoints (IMDS token, /metrics) over plain HTTP on this address, as NMI does (e.g. 0.0.0.0:2579).
    #[arg(long)]
    agent_listen: Option<std::net::SocketAddr>,
    /// The node's IMDS: calls from pods an AzurePodIdentityException lets through, and IMDS paths the agent does not answer, go there untouched.
    #[arg(long, default_value = kite_server::agent::upstream::DEFAULT_IMDS)]
    upstream_imds: String,
    /// Tokens the node agent caches (1 to 1000000); past that the least recently used go first.
    #[arg(long, default_value_t = kite_server::agent::cache::DEFAULT_CACHE_SIZE, value_parser = cache_size)]
    imds_cache_size: std::num::NonZeroUsize,
    /// Connections each listener holds open at once; past it new ones are closed at once (logged).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// The ConfigMap (key ca.crt, in each pod's namespace) holding kite's CA, which the workload
    /// identity webhook mounts into the pods it injects, with AWS_CA_BUNDLE and REQUESTS_CA_BUNDLE
    /// naming it. Leave it out when pods trust kite's certificate already (a public CA): those
    /// variables replace the SDKs' default trust. `kite k8s manifests ca-bundle` prints the ConfigMap.
    #[arg(long)]
    webhook_ca_configmap: Option<String>,
    /// AWS_REGION and AWS_DEFAULT_REGION for the pods the webhook gives AWS credentials (the AWS SDKs
    /// sign for a region and refuse to start without one), as EKS's webhook sets its cluster's region.
    #[arg(long, default_value = "us-east-1", value_parser = aws_region)]
    webhook_aws_region: String,
    /// Serve the API server's webhooks (/authenticate, /authorize, /mutate-v1-pod) on this address
    /// only, to callers presenting a client certificate from --webhook-client-ca (kube-apiserver's,
    /// from its webhook kubeconfig); the main listener then no longer answers them.
    #[arg(long, requires = "webhook_client_ca")]
    webhook_listen: Option<std::net::SocketAddr>,
    /// PEM CA certificate(s) whose client certificates the webhook listener accepts.
    #[arg(long, requires = "webhook_listen")]
    webhook_client_ca: Option<PathBuf>,
    /// Seconds a connection may stay open with no byte moving either way before it is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout: u64,
    /// Days the audit trail keeps events (1 to 3650); older ones are pruned hourly.
    #[arg(long, default_value_t = kite_core::audit::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    audit_retention_days: u32,
    /// Record no audit trail (management writes, tokens, node-agent and webhook decisions).
    #[arg(long)]
    no_audit: bool,
    /// Run kite doctor's rules every SECS seconds (10 to 86400) and export the findings on /metrics
    /// as kite_doctor_findings{rule,severity}; 0 (the default) never.
    #[arg(long, default_value_t = 0, value_parser = doctor_interval)]
    doctor_interval: u64,
}

fn doctor_interval(raw: &str) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(n) if n == 0 || (10..=86_400).contains(&n) => Ok(n),
        _ => Err(format!("'{raw}' is not an interval: give 0 (off) or 10 to 86400 seconds")),
    }
}

/// A region name as AWS spells them (us-east-1, eu-central-2, us-gov-west-1).
fn aws_region(raw: &str) -> Result<String, String> {
    let parts: Vec<&str> = raw.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        Ok(raw.to_string())
    } else {
        Err(format!("'{raw}' is not an AWS region name such as us-east-1 or eu-central-2"))
    }
}

pub(crate) fn cache_size(raw: &str) -> Result<std::num::NonZeroUsize, String> {
    match raw.parse::<std::num::NonZeroUsize>() {
        Ok(n) if n.get() <= 1_000_000 => Ok(n),
        _ => Err(format!("'{raw}' is not a cache size: give a whole number from 1 to 1000000")),
    }
}

fn home(cli_home: Option<PathBuf>) -> PathBuf {
    cli_home.unwrap_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".kite"))
}

fn init_log() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KITE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = home(cli.home.clone());
    let result = match cli.command {
        Command::Agent(args) => {
            init_log();
            kite_server::agent::run::run(args.config()).await.map(|_| ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            init_log();
            let agent_account = match args.agent_service_account.as_deref().map(|a| kite_server::agent::nodes::AgentAccount::parse(a, &args.agent_audience)) {
                Some(Err(e)) => {
                    eprintln!("ERROR: {e:#}");
                    return ExitCode::from(2);
                }
                Some(Ok(a)) => Some(a),
                None => None,
            };
            let config = kite_server::Config {
                home,
                database_url: args.database_url,
                kek: kite_server::infra::kek::KekInput { file: args.kek_file, env: std::env::var("KITE_KEK").ok() },
                listen: args.listen,
                insecure_http: args.insecure_http,
                public_url: args.public_url,
                tls_names: args.tls_names,
                dns_domain: args.dns_domain,
                token_lifetime_secs: args.token_lifetime,
                issuer_cas: args.issuer_cas,
                issuer_access: kite_server::token::issuers::IssuerAccess { loopback: args.allow_http_issuer, private: args.allow_private_issuer },
                key_retire_grace_secs: args.key_retire_grace,
                k8s_rbac: args.k8s_rbac,
                eks_cluster: args.eks_cluster,
                aws_auth: args.aws_auth,
                access_entries: args.access_entries,
                authentication_mode: args.authentication_mode,
                entra_audience: args.entra_audience,
                entra_mapping: args.entra_mapping,
                pod_identity: args.pod_identity,
                kubernetes: args.cluster.target(),
                cluster_issuer: args.cluster_issuer,
                agent_account,
                pod_identity_mode: args.pod_identity_mode,
                cluster_identity: args.cluster_identity,
                agent_listen: args.agent_listen,
                upstream_imds: args.upstream_imds,
                imds_cache_size: args.imds_cache_size,
                connections: kite_server::infra::conn::ConnectionLimits {
                    max_connections: args.max_connections as usize,
                    idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
                },
                webhook_ca_config_map: args.webhook_ca_configmap,
                webhook_aws_region: args.webhook_aws_region,
                webhook_listen: args.webhook_listen,
                webhook_client_ca: args.webhook_client_ca,
                doctor_interval: (args.doctor_interval > 0).then(|| std::time::Duration::from_secs(args.doctor_interval)),
                audit: kite_server::audit::AuditSettings { enabled: !args.no_audit, retention_days: args.audit_retention_days, ..Default::default() },
                leader_election: kite_server::LeaderElection::new(
                    args.leader_election_namespace,
                    std::time::Duration::from_secs(args.leader_election_lease_duration),
                ),
                tls_files: args.tls_cert.zip(args.tls_key).map(|(cert, key)| kite_server::infra::tls::Provided { cert, key }),
            };
            kite_server::serve(config).await.map(|_| ExitCode::SUCCESS)
        }
        command => commands::run(command, &home, cli.output, cli.query.as_deref()).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(1)
        }
    }
}
