//! `kite k8s manifests`: the objects that make a cluster call kite, for `kubectl apply -f -`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use kite_k8s::install::{self, ApiServerFiles, Options};
use kite_k8s::manifests::{ca_config_map, webhook, WebhookOptions, WebhookTarget};

use crate::output::Format;

/// `kite k8s manifests [server|agent|crds|webhooks|all]`: with no part named, all.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ManifestsArgs {
    #[command(subcommand)]
    cmd: Option<ManifestsCmd>,
    #[command(flatten)]
    install: InstallArgs,
}

#[derive(Args)]
pub struct InstallArgs {
    /// The namespace kite runs in.
    #[arg(long, default_value = "kite-system")]
    namespace: String,
    /// The container image with the kite binary on its PATH (the project publishes none: build one
    /// from the release binary and push it where the cluster pulls from).
    #[arg(long, default_value = concat!("kite:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// The Secret (in --namespace) whose key `url` holds the PostgreSQL URL the replicas share.
    #[arg(long, default_value = "kite-database")]
    database_url_secret: String,
    /// The Secret (in --namespace) whose key `kek` holds the key-encryption key, base64 of 32 random
    /// bytes (`kubectl create secret generic kite-kek --from-literal=kek=$(head -c32 /dev/urandom | base64)`).
    #[arg(long, default_value = "kite-kek")]
    kek_secret: String,
    /// The kubernetes.io/tls Secret (e.g. cert-manager's) with the server's certificate for
    /// kite-server.NAMESPACE.svc; the agents trust its CA from the ConfigMap kite-root-ca.crt.
    #[arg(long, default_value = "kite-server-tls")]
    tls_secret: String,
    /// The cluster's service-account issuer (`kubectl get --raw /.well-known/openid-configuration`),
    /// which signs the agents' tokens.
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    agent_issuer: String,
}

impl InstallArgs {
    fn options(self) -> Options {
        Options {
            namespace: self.namespace,
            image: self.image,
            database_url_secret: self.database_url_secret,
            kek_secret: self.kek_secret,
            tls_secret: self.tls_secret,
            agent_issuer: self.agent_issuer,
            server_access: kite_kube::access::server(),
            agent_access: kite_kube::access::agent(),
        }
    }
}

#[derive(Args)]
pub struct ApiServerArgs {
    /// kite's namespace, for the default --url.
    #[arg(long, default_value = "kite-system")]
    namespace: String,
    /// The webhook listener's base URL as kube-apiserver reaches it (it often runs outside the
    /// cluster network: give a node port or load balancer address then). Default: the Service.
    #[arg(long)]
    url: Option<String>,
    /// On the control-plane nodes: the CA of kite's serving certificate.
    #[arg(long, default_value = "/etc/kubernetes/pki/kite-ca.crt")]
    ca_file: String,
    /// On the control-plane nodes: the client certificate kube-apiserver presents, signed by the
    /// CA in the ConfigMap kite-webhook-client-ca (kite serve's --webhook-client-ca).
    #[arg(long, default_value = "/etc/kubernetes/pki/kite-webhook-client.crt")]
    client_certificate: String,
    #[arg(long, default_value = "/etc/kubernetes/pki/kite-webhook-client.key")]
    client_key: String,
}

#[derive(Subcommand)]
pub enum ManifestsCmd {
    /// Everything `kubectl apply -f -` needs to run kite: the CRDs, then server and agent.
    All(InstallArgs),
    /// The namespace, kite-server's ServiceAccount and RBAC (exactly what it watches and writes),
    /// Deployment (2 replicas, probes), Service and PodDisruptionBudget.
    Server(InstallArgs),
    /// kite-agent's ServiceAccount and read-only RBAC (no Secrets), and the node agent DaemonSet.
    Agent(InstallArgs),
    /// aad-pod-identity's four CRDs (as `kite k8s crds`).
    Crds,
    /// kube-apiserver's authentication and authorization webhook configuration files
    /// (kubeconfig format, with its client certificate); each printed after a comment naming the flag.
    Webhooks(ApiServerArgs),
    /// The MutatingWebhookConfiguration of the workload identity webhook (POST /mutate-v1-pod).
    Webhook(WebhookArgs),
    /// The ConfigMap with kite's CA that `kite serve --webhook-ca-configmap NAME` mounts into pods,
    /// one per namespace.
    CaBundle {
        #[arg(long, default_value = "kite-root-ca.crt")]
        name: String,
        #[arg(short = 'n', long = "namespace", required = true, num_args = 1..)]
        namespaces: Vec<String>,
        /// Default: KITE_HOME/tls/ca.pem.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

fn read_ca(home: &std::path::Path, given: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let default = home.join("tls").join("ca.pem");
    let path = given.unwrap_or(&default);
    std::fs::read(path)
        .with_context(|| format!("reading kite's CA at {}: give --ca-file, or --no-ca-bundle if the API server trusts kite's certificate", path.display()))
}

#[derive(Args)]
pub struct WebhookArgs {
    /// kite's namespace: its Service lives there, and its pods are never mutated.
    #[arg(long, default_value = "kite-system")]
    namespace: String,
    /// The Service in front of `kite serve`.
    #[arg(long, default_value = "kite")]
    service: String,
    #[arg(long, default_value_t = 443, value_parser = clap::value_parser!(i32).range(1..=65535))]
    port: i32,
    /// kite's HTTPS base URL, when it runs outside the cluster (instead of --service).
    #[arg(long, conflicts_with = "service")]
    url: Option<String>,
    /// The CA of kite's serving certificate, as caBundle (default: KITE_HOME/tls/ca.pem, which kite
    /// generates; --no-ca-bundle when the API server trusts kite's certificate already).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long, conflicts_with = "ca_file")]
    no_ca_bundle: bool,
    /// Only pods labelled azure.workload.identity/use=true (Azure Workload Identity alone); IRSA and
    /// EKS Pod Identity need every pod.
    #[arg(long)]
    azure_only: bool,
    /// What the API server does when kite cannot be reached. Default: Fail with --azure-only (only
    /// labelled pods wait for kite), otherwise Ignore (pods start without injected credentials
    /// rather than not at all).
    #[arg(long, value_parser = ["Fail", "Ignore"])]
    failure_policy: Option<String>,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=30))]
    timeout_seconds: i32,
}

pub fn run(args: ManifestsArgs, home: &std::path::Path, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    match args.cmd.unwrap_or(ManifestsCmd::All(args.install)) {
        ManifestsCmd::All(args) => super::print_manifests(install::all(&args.options()), format, query)?,
        ManifestsCmd::Server(args) => super::print_manifests(install::server(&args.options()), format, query)?,
        ManifestsCmd::Agent(args) => super::print_manifests(install::agent(&args.options()), format, query)?,
        ManifestsCmd::Crds => super::print_manifests(kite_k8s::podidentity::crds::crds(), format, query)?,
        ManifestsCmd::Webhooks(args) => {
            let url = args.url.unwrap_or_else(|| format!("https://{}.{}.svc:{}", install::SERVER, args.namespace, install::WEBHOOK_PORT));
            let files = ApiServerFiles { ca: args.ca_file, client_cert: args.client_certificate, client_key: args.client_key };
            let configs = install::webhook_configs(&url, &files).map_err(|e| anyhow!("{e}"))?;
            if format.is_some_and(|f| f != Format::Yaml) || query.is_some() {
                super::print_manifests(configs.into_iter().map(|c| c.config).collect(), format, query)?;
            } else {
                for c in configs {
                    print!("# kube-apiserver {}={}\n---\n{}", c.flag, c.path, serde_yaml_ng::to_string(&c.config)?);
                }
            }
        }
        ManifestsCmd::Webhook(args) => super::print_manifests(vec![serde_json::to_value(mutating_webhook(args, home)?)?], format, query)?,
        ManifestsCmd::CaBundle { name, namespaces, ca_file } => {
            let pem = String::from_utf8(read_ca(home, ca_file.as_deref())?).context("the CA file is not PEM text")?;
            let maps = namespaces.iter().map(|ns| serde_json::to_value(ca_config_map(&name, ns, &pem))).collect::<Result<Vec<_>, _>>()?;
            super::print_manifests(maps, format, query)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn mutating_webhook(args: WebhookArgs, home: &std::path::Path) -> Result<kite_k8s::k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> {
    let ca_bundle = if args.no_ca_bundle { None } else { Some(read_ca(home, args.ca_file.as_deref())?) };
    let target = match args.url {
        Some(url) => WebhookTarget::Url(url),
        None => WebhookTarget::Service { namespace: args.namespace.clone(), name: args.service, port: args.port },
    };
    let failure_policy = args.failure_policy.unwrap_or_else(|| if args.azure_only { "Fail" } else { "Ignore" }.into());
    let options = WebhookOptions {
        target,
        ca_bundle,
        kite_namespace: args.namespace,
        azure_only: args.azure_only,
        failure_policy,
        timeout_seconds: args.timeout_seconds,
    };
    webhook(&options).map_err(|e| anyhow!("{e}"))
}
