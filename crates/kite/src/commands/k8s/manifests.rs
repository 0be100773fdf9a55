//! `kite k8s manifests`: the objects that make a cluster call kite, for `kubectl apply -f -`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use kite_k8s::manifests::{ca_config_map, webhook, WebhookOptions, WebhookTarget};

use crate::output::Format;

#[derive(Subcommand)]
pub enum ManifestsCmd {
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

pub fn run(cmd: ManifestsCmd, home: &std::path::Path, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    match cmd {
        ManifestsCmd::Webhook(args) => {
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
            let config = webhook(&options).map_err(|e| anyhow!("{e}"))?;
            super::print_manifests(vec![serde_json::to_value(config)?], format, query)?;
            Ok(ExitCode::SUCCESS)
        }
        ManifestsCmd::CaBundle { name, namespaces, ca_file } => {
            let pem = String::from_utf8(read_ca(home, ca_file.as_deref())?).context("the CA file is not PEM text")?;
            let maps = namespaces.iter().map(|ns| serde_json::to_value(ca_config_map(&name, ns, &pem))).collect::<Result<Vec<_>, _>>()?;
            super::print_manifests(maps, format, query)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
